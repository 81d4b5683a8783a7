"""``onebp report compare RESULTS.csv REFERENCE.csv``: does a rerun match the shipped reference?

A cell is one (dataset, method, setting tag, protocol, split, metric@k) of the long results table
(settings are compared by tag — ``main``, ``beta=0.9`` — not by hash, which also hashes where the
data came from). Only the reference's seed-to-seed spread sets how far a rerun may move: the
rerun's own spread is never used, because one diverged seed would widen it and hide itself.

Per reference cell: n_f seeds, mean m_f, standard deviation s_f (ddof 1). Its scale σ is s_f, but
never less than the *pooled* spread p of the reference's cells of the same dataset, protocol, split
and metric@k (all methods and settings: p = root mean of their variances) — a std from 2–5 seeds
is often far too small by chance; a one-seed cell takes σ = p, and σ = 0 when there is nothing to
pool. A reference cell disagrees when any of:

    mean check   |m_r − m_f| > K · σ · sqrt(1/n_r + 1/n_f) + TOL
    seed check   some rerun seed x has |x − m_f| > K_SEED · σ · sqrt(1 + 1/n_f) + FLOOR
    NaN          a value (of any seed) is NaN, infinite or not a number, on either side
    missing      the rerun lacks the cell

with K = 5, K_SEED = 5, TOL = 0.005 and FLOOR = 0.005 (metric units; ``--k-sigma``, ``--k-seed``,
``--tol``, ``--floor``). Cells only the rerun has are listed but not counted. The command fails
(exit 1) when a reference cell disagrees, and when no reference cell was compared at all; an
unknown ``--splits`` name, or a split the reference has no rows for, is refused (exit 2): a typo
must not turn the check into "0 of 0 agree".

How often it cries wolf, and what it catches: ``python benchmarks/compare_false_alarms.py`` splits
a reference's seeds into two honest halves in every way (3 + 2 of 5 seeds, 2 + 1 of 3, 1 + 1 of
2), compares one half as the "reference" with the other as the "rerun", then moves one rerun seed
of every cell by +0.03 (splits test and best_on_test; run 2026-12-03):

    reference             seeds  splits  cells  false alarms: splits (cells)  +0.03 seed caught (std ≤ 0.003)
    ml-100k-200epochs     3 + 2    10    1170   0 of 10  (0 of 11700)          70.8 %  (92.7 %)
    ml-100k-claims        2 + 1     3     198   1 of 3   (1 of 594)            79.6 %  (91.7 %)
    smoke                 1 + 1     2     135   2 of 2   (252 of 270)          100 %

The cell of issue 16 (ml-100k, onebp, main, test NDCG@20, five seeds spread 0.003) is caught in
every split. The rule this one replaced (|Δmean| > max(3·SE_diff, 1e-4), SE_diff from both sides'
std) raised a false alarm in 10 of 10 ml-100k splits (715 of 11700 cells) and caught 0.1 % of the
+0.03 seeds there, the issue's cell in none. A +0.03 seed goes unflagged mostly on noisy cells (MRR@5, hit@5: seed std about 0.01),
where it lies within the spread. Halves have fewer seeds than a full rerun against the full
reference, so these false-alarm rates are pessimistic; the smoke reference (2 seeds, halves of one
seed: no spread to learn) is meant to be reproduced bit for bit on one machine, where Δ = 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from tabulate import tabulate

from onebp.errors import UserError
from onebp.report.collect import METRIC_SPLITS, load_results
from onebp.report.layout import setting_tag

KEYS = ["dataset", "method", "tag", "protocol", "split", "metric", "k"]
#: cells whose spreads are pooled: the same measurement for different methods and settings
POOL_KEYS = ["dataset", "protocol", "split", "metric", "k"]
DEFAULT_SPLITS = ("test", "best_on_test")
K_SIGMA = 5.0
K_SEED = 5.0
TOL = 0.005
FLOOR = 0.005
RULE = ("σ = max(reference cell's std over seeds, pooled reference std of that metric); disagree when "
        "|Δmean| > {k:g}·σ·sqrt(1/n_r+1/n_f) + {tol:g}, or a rerun seed is more than "
        "{k_seed:g}·σ·sqrt(1+1/n_f) + {floor:g} from the reference mean, or a value is NaN")


def check_splits(splits: tuple[str, ...]) -> tuple[str, ...]:
    """The split names, refused (UserError) when empty or not metric splits of the results table."""
    if not splits:
        raise UserError(f"--splits: name at least one of {', '.join(METRIC_SPLITS)}")
    unknown = [s for s in splits if s not in METRIC_SPLITS]
    if unknown:
        raise UserError(f"--splits: unknown split {', '.join(map(repr, unknown))}; "
                        f"known: {', '.join(METRIC_SPLITS)}")
    return tuple(dict.fromkeys(splits))


def _values(df: pd.DataFrame, splits: tuple[str, ...]) -> pd.DataFrame:
    """The rows of ``splits`` with their setting tag; a value that is not a number becomes NaN."""
    sel = df[df["split"].isin(splits)].copy()
    sel["tag"] = sel["setting"].astype(str).map(setting_tag)
    sel["k"] = sel["k"].astype("Int64")
    sel["value"] = pd.to_numeric(sel["value"], errors="coerce").astype(float)
    return sel


def cells(df: pd.DataFrame, splits: tuple[str, ...] = DEFAULT_SPLITS) -> pd.DataFrame:
    """Per cell over seeds: mean and std of the numeric values, seeds ``n``, NaN values ``n_nan``."""
    sel = _values(df, splits)
    sel["isnan"] = ~np.isfinite(sel["value"])
    g = sel.groupby(KEYS, dropna=False)
    out = g["value"].agg(mean="mean", std=lambda v: v.std(ddof=1) if v.notna().sum() > 1 else np.nan,
                         n="size")
    out["n_nan"] = g["isnan"].sum().astype(int)
    return out.reset_index()


def reference_scale(ref: pd.DataFrame) -> pd.Series:
    """σ per reference cell (``cells`` output): the cell's std, at least the pooled std of its
    dataset/protocol/split/metric@k (root mean of the cells' variances); the pooled value alone for
    a one-seed cell; 0 when there is nothing to pool."""
    pooled = np.sqrt((ref["std"] ** 2).groupby([ref[k] for k in POOL_KEYS], dropna=False).transform("mean"))
    return np.fmax(ref["std"], pooled).fillna(0.0)


def compare(rerun: pd.DataFrame, reference: pd.DataFrame, splits: tuple[str, ...] = DEFAULT_SPLITS,
            k_sigma: float = K_SIGMA, tol: float = TOL, k_seed: float = K_SEED,
            floor: float = FLOOR) -> pd.DataFrame:
    """One row per cell of either table, with ``status`` ∈ {agree, disagree, NaN value, missing in
    rerun, not in reference} and ``why`` (which check failed)."""
    a, b = cells(rerun, splits), cells(reference, splits)
    b["sigma"] = reference_scale(b)
    m = a.merge(b, on=KEYS, how="outer", suffixes=("_rerun", "_ref"), indicator=True)
    n_r, n_f = m["n_rerun"].fillna(1), m["n_ref"].fillna(1)
    m["delta"] = m["mean_rerun"] - m["mean_ref"]
    m["allowed"] = k_sigma * m["sigma"] * np.sqrt(1 / n_r + 1 / n_f) + tol
    m["seed_allowed"] = k_seed * m["sigma"] * np.sqrt(1 + 1 / n_f) + floor
    # The seed check: the rerun seed farthest from the reference mean.
    seeds = _values(rerun, splits).merge(m.loc[m["_merge"] == "both", KEYS + ["mean_ref"]], on=KEYS)
    seeds["dev"] = (seeds["value"] - seeds["mean_ref"]).abs()
    worst = seeds.groupby(KEYS, dropna=False)["dev"].max().rename("worst_seed").reset_index()
    m = m.merge(worst, on=KEYS, how="left")
    both = m["_merge"] == "both"
    has_nan = (m["n_nan_rerun"].fillna(0) > 0) | (m["n_nan_ref"].fillna(0) > 0)
    mean_bad = m["delta"].abs() > m["allowed"]
    seed_bad = m["worst_seed"] > m["seed_allowed"]
    m["status"] = np.select(
        [m["_merge"] == "left_only", m["_merge"] == "right_only", both & has_nan, both & (mean_bad | seed_bad)],
        ["not in reference", "missing in rerun", "NaN value", "disagree"], "agree")
    m["why"] = np.select(
        [both & has_nan, both & mean_bad & seed_bad, both & mean_bad, both & seed_bad],
        ["NaN", "mean, seed", "mean", "seed"], "")
    return m.drop(columns="_merge").sort_values(KEYS).reset_index(drop=True)


BAD = ("disagree", "NaN value", "missing in rerun")


def format_table(m: pd.DataFrame) -> str:
    def side(mean: float, std: float, n: float, n_nan: float) -> str:
        if not np.isfinite(n):
            return ""
        text = (f"{mean:.4f}" if np.isfinite(mean) else "NaN") + (f" ± {std:.4f}" if np.isfinite(std) else "")
        return text + f" ({int(n)}" + (f", {int(n_nan)} NaN" if n_nan else "") + ")"

    def num(x: float, fmt: str) -> str:
        return format(x, fmt) if np.isfinite(x) else ""

    rows = [[r.dataset, r.method, r.tag, r.protocol, r.split,
             f"{r.metric}@{r.k}" if pd.notna(r.k) else r.metric,
             side(r.mean_rerun, r.std_rerun, r.n_rerun, r.n_nan_rerun),
             side(r.mean_ref, r.std_ref, r.n_ref, r.n_nan_ref),
             num(r.delta, "+.4f"), num(r.allowed, ".4f"), num(r.worst_seed, ".4f"), num(r.seed_allowed, ".4f"),
             r.status + (f" ({r.why})" if r.why and r.status == "disagree" else "")]
            for r in m.itertuples()]
    return tabulate(rows, headers=["dataset", "method", "setting", "protocol", "split", "metric",
                                   "rerun (n seeds)", "reference (n seeds)", "Δ", "allowed",
                                   "worst seed", "seed allowed", "status"],
                    tablefmt="github")


def run(rerun_path: str, reference_path: str, splits: tuple[str, ...] | None = None,
        k_sigma: float = K_SIGMA, tol: float = TOL, k_seed: float = K_SEED, floor: float = FLOOR) -> int:
    """Print the comparison; 0 when every reference cell agrees, 1 otherwise (or when none was
    compared). UserError for an unknown split, a named split the reference lacks (by default, test
    and best_on_test, at least one of them), or an unreadable table."""
    named = splits is not None
    splits = check_splits(tuple(splits)) if named else DEFAULT_SPLITS
    for name, x in (("--k-sigma", k_sigma), ("--k-seed", k_seed), ("--tol", tol), ("--floor", floor)):
        if not np.isfinite(x) or x < 0:
            raise UserError(f"{name} must be a finite number >= 0, got {x}")
    rerun, reference = load_results(rerun_path, partial_ok=True), load_results(reference_path)
    absent = [s for s in splits if not (reference["split"] == s).any()]
    # A split named on the command line must be there; of the defaults, one is enough (a study
    # without protocol paper has no best_on_test rows).
    if absent and (named or len(absent) == len(splits)):
        raise UserError(f"{reference_path}: no rows of split {', '.join(map(repr, absent))} "
                        f"(it has: {', '.join(sorted(map(str, reference['split'].dropna().unique())))})")
    m = compare(rerun, reference, splits, k_sigma, tol, k_seed, floor)
    print(format_table(m))
    bad = m[m["status"].isin(BAD)]
    print(f"\nrule: {RULE.format(k=k_sigma, tol=tol, k_seed=k_seed, floor=floor)}; "
          "a reference cell missing from the rerun disagrees.")
    extra = int((m["status"] == "not in reference").sum())
    n_ref = len(m) - extra
    if n_ref == 0:
        print(f"no reference cells to compare in {reference_path} (splits {', '.join(splits)}) — "
              "nothing was checked, which is a failure.")
        return 1
    counts = m.loc[m["status"].isin(BAD), "status"].value_counts()
    detail = ", ".join(f"{n} {s}" for s, n in counts.items())
    print(f"{n_ref - len(bad)} of {n_ref} reference cells agree; {len(bad)} fail the check"
          + (f" ({detail})" if detail else "")
          + (f"; {extra} cells only in the rerun (not compared)" if extra else "")
          + (" — the rerun does NOT match the reference." if len(bad) else " — the rerun matches the reference."))
    return 1 if len(bad) else 0
