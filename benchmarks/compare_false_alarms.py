"""How often ``onebp report compare`` flags an honest rerun, and how often it catches one diverged seed.

    python benchmarks/compare_false_alarms.py [REFERENCE_DIR ...] [--shift 0.03] [--k-seed 6] ...

Default references: every results/reference/*/ with a results.csv. For each, the seeds of the
shipped results table are split into two honest halves in every possible way (the larger half is
the "reference": 3 + 2 of 5 seeds, 2 + 1 of 3, 1 + 1 of 2), the halves are compared with the
command's own rule (``onebp.report.compare.compare``), and then one rerun seed of *every* cell is
moved by ``--shift`` (the same seed for all cells; each cell is judged on its own, so this is one
detection trial per cell). Printed per reference: the splits where the honest comparison failed,
the honest cells that disagreed, the fraction of shifted cells flagged (all cells, and those whose
seeds spread little: std over all seeds <= 0.003, where +0.03 is far outside the spread; on noisy
cells such as MRR@5 a +0.03 seed is within the spread and not a divergence), and the cell named in
issue 16 (onebp, main, test, NDCG@20 of ml-100k).

Half the seeds per side is fewer than a real rerun has, so the false-alarm figures are pessimistic.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from onebp.report import compare as cmp
from onebp.report.collect import load_results

REPO = Path(__file__).resolve().parent.parent
DEFAULT = sorted(p.parent for p in (REPO / "results" / "reference").glob("*/results.csv"))
LOW_SPREAD = 0.003  # std over all the reference's seeds, like the issue's cell
ISSUE_CELL = {"method": "onebp", "tag": "main", "split": "test", "metric": "ndcg", "k": 20}


def halves(seeds: list[int]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Every split of ``seeds`` into (reference, rerun) with the reference the larger half."""
    n_ref = (len(seeds) + 1) // 2
    return [(ref, tuple(s for s in seeds if s not in ref)) for ref in itertools.combinations(seeds, n_ref)]


def is_issue_cell(m: pd.DataFrame) -> pd.Series:
    mask = pd.Series(True, index=m.index)
    for key, value in ISSUE_CELL.items():
        mask &= m[key] == value
    return mask & (m["dataset"] == "ml-100k") & (m["protocol"] == "clean")


def evaluate(path: Path, shift: float, **rule: float) -> dict:
    df = load_results(path / "results.csv")
    df = df[df["split"].isin(cmp.DEFAULT_SPLITS)]
    seeds = sorted(int(s) for s in df["seed"].unique())
    out = {"reference": path.name, "seeds": f"{(len(seeds) + 1) // 2} + {len(seeds) // 2}"}
    if len(seeds) < 2:
        return {**out, "note": "one seed: nothing to split"}
    splits_failed = cells_false = cells_total = caught = shifted = issue_caught = issue_total = 0
    low_caught = low_total = 0
    # Cells whose seeds (all of them) spread as little as the issue's cell: a +0.03 seed is an outlier there.
    full = cmp.cells(df)
    low = full.loc[full["std"] <= LOW_SPREAD, cmp.KEYS]
    parts = halves(seeds)
    for ref_seeds, rerun_seeds in parts:
        ref, rerun = df[df["seed"].isin(ref_seeds)], df[df["seed"].isin(rerun_seeds)]
        honest = cmp.compare(rerun, ref, match_seeds=False, **rule)  # halves hold different seeds
        honest = honest[honest["status"] != "not in reference"]
        bad = honest["status"].isin(cmp.BAD)
        splits_failed += int(bad.any())
        cells_false += int(bad.sum())
        cells_total += len(honest)
        moved = rerun.copy()
        one = moved["seed"] == rerun_seeds[0]
        moved.loc[one, "value"] = moved.loc[one, "value"] + shift
        m = cmp.compare(moved, ref, match_seeds=False, **rule)
        m = m[m["status"] != "not in reference"]
        # Only cells the honest comparison passed say anything about detection.
        ok = m.merge(honest.loc[~bad, cmp.KEYS], on=cmp.KEYS)
        flagged = ok["status"].isin(cmp.BAD)
        caught += int(flagged.sum())
        shifted += len(ok)
        issue = is_issue_cell(ok)
        in_low = ok.merge(low, on=cmp.KEYS, how="left", indicator=True)["_merge"].eq("both").to_numpy()
        low_total += int(in_low.sum())
        low_caught += int((flagged.to_numpy() & in_low).sum())
        issue_total += int(issue.sum())
        issue_caught += int((flagged & issue).sum())
    return {**out, "splits": len(parts), "cells": cells_total // len(parts),
            "false alarms (splits)": f"{splits_failed} of {len(parts)}",
            "false alarms (cells)": f"{cells_false} of {cells_total} ({100 * cells_false / cells_total:.2f} %)",
            f"one seed {shift:+g} caught": f"{caught} of {shifted} ({100 * caught / max(shifted, 1):.1f} %)",
            f"caught where std <= {LOW_SPREAD:g}": f"{low_caught} of {low_total}"
            + (f" ({100 * low_caught / low_total:.1f} %)" if low_total else ""),
            "issue cell caught": f"{issue_caught} of {issue_total}" if issue_total else "-"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("references", nargs="*", type=Path, default=DEFAULT)
    ap.add_argument("--shift", type=float, default=0.03)
    ap.add_argument("--k-sigma", type=float, default=cmp.K_SIGMA)
    ap.add_argument("--k-seed", type=float, default=cmp.K_SEED)
    ap.add_argument("--tol", type=float, default=cmp.TOL)
    ap.add_argument("--floor", type=float, default=cmp.FLOOR)
    args = ap.parse_args()
    rule = {"k_sigma": args.k_sigma, "k_seed": args.k_seed, "tol": args.tol, "floor": args.floor}
    rows = [evaluate(p, args.shift, **rule) for p in args.references]
    print(f"rule: {cmp.RULE.format(k=args.k_sigma, tol=args.tol, k_seed=args.k_seed, floor=args.floor)}")
    print(f"splits {', '.join(cmp.DEFAULT_SPLITS)}; honest halves of each reference's seeds\n")
    print(tabulate(rows, headers="keys", tablefmt="github"))


if __name__ == "__main__":
    main()
