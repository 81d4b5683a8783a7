"""``onebp report compare RESULTS.csv REFERENCE.csv``: does a rerun match the shipped reference?

A cell is one (dataset, method, setting tag, protocol, split, metric@k) of the long results table
(settings are compared by tag — ``main``, ``beta=0.9`` — not by hash, which also hashes where the
data came from); each row is one seed's value of a cell. Only the reference's seed-to-seed spread
sets how far a rerun may move: the rerun's own spread is never used, because one diverged seed
would widen it and hide itself.

Seeds are matched, not counted: every (cell, seed) of the reference must have its row in the
rerun, or the cell is *missing in rerun* (the seeds are named) — a rerun with one seed of five, or
one seed's rows repeated five times, is not five seeds. A (cell, seed) with two rows in either file
is refused (exit 2; two settings sharing a tag do that), and so is a seed that is not a whole
number. A rerun's last row without its line end, or with fewer fields than the header, was cut
while the file was written or copied: it is not read (its seed then counts as missing) and the
check fails. Seeds only the rerun has are compared like the others (a rerun may run more seeds).
Deterministic methods (EASE, MostPop: one value whatever the seed) have a row per seed on both
sides like the others, so they are matched the same way.

Per reference cell: n_f seeds, mean m_f, standard deviation s_f (ddof 1). Its scale σ is s_f, but
never less than the *pooled* spread p of the reference's cells of the same dataset, protocol, split
and metric@k — a std from 2–5 seeds is often far too small by chance; a one-seed cell takes σ = p,
and σ = 0 when there is nothing to pool. p is the root mean square of the stds of that group's
cells with a spread (std > 0: deterministic and one-seed cells measure no seed noise), each std
capped at POOL_CAP = 3 times the group's lower median std (the ⌈n/2⌉-th smallest): one noisy cell,
such as a reference seed that collapsed, must not widen the allowance of every other method — the
plain root mean square let a −0.15 regression of one method pass because another method's
reference had one seed at 0.0. (A plain median would not do: of two cells it is their mean.)
A reference cell disagrees when any of:

    mean check   |m_r − m_f| > K · σ · sqrt(1/n_r + 1/n_f) + TOL
    seed check   some rerun seed x has |x − m_f| > K_SEED · σ · sqrt(1 + 1/n_f) + FLOOR
    NaN          a value (of any seed) is NaN, infinite or not a number, on either side
    missing      the rerun lacks the cell, or one of its reference seeds

with K = 5, K_SEED = 5, TOL = 0.005 and FLOOR = 0.005 (metric units; ``--k-sigma``, ``--k-seed``,
``--tol``, ``--floor``). Cells only the rerun has are listed but not counted. The command fails
(exit 1) when a reference cell disagrees, when the rerun's last row was cut, and when no reference
cell was compared at all; an unknown ``--splits`` name, or a split the reference has no rows for, is
refused (exit 2): a typo must not turn the check into "0 of 0 agree".

How often it cries wolf, and what it catches: ``python benchmarks/compare_false_alarms.py`` splits
a reference's seeds into two honest halves in every way (3 + 2 of 5 seeds, 2 + 1 of 3, 1 + 1 of
2), compares one half as the "reference" with the other as the "rerun" (their seeds differ by
construction, so it must call ``compare(..., match_seeds=False)``), then moves one rerun seed of
every cell by +0.03 (splits test and best_on_test; run 2026-12-03, with the capped pool):

    reference             seeds  splits  cells  false alarms: splits (cells)  +0.03 seed caught (std ≤ 0.003)
    ml-100k-200epochs     3 + 2    10    1170   0 of 10  (0 of 11700)          71.0 %  (93.0 %)
    ml-100k-claims        2 + 1     3     198   1 of 3   (1 of 594)            80.4 %  (92.8 %)
    smoke                 1 + 1     2     135   2 of 2   (252 of 270)          100 %

(the uncapped pool over all cells, zeros included: the same false alarms, 70.8 % (92.7 %) and
79.6 % (91.7 %) caught.) The cell of issue 16 (ml-100k, onebp, main, test NDCG@20, five seeds
spread 0.003) is caught in every split. The rule this one replaced (|Δmean| > max(3·SE_diff, 1e-4),
SE_diff from both sides' std) raised a false alarm in 10 of 10 ml-100k splits (715 of 11700 cells)
and caught 0.1 % of the +0.03 seeds there, the issue's cell in none. A +0.03 seed goes unflagged
mostly on noisy cells (MRR@5, hit@5: seed std about 0.01), where it lies within the spread. Halves
have fewer seeds than a full rerun against the full reference, so these false-alarm rates are
pessimistic; the smoke reference (2 seeds, halves of one seed: no spread to learn) is meant to be
reproduced bit for bit on one machine, where Δ = 0.
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
#: a cell's std counts into its group's pooled spread at most this many times the group's lower median
POOL_CAP = 3.0
# (POOL_CAP is written in, not a placeholder: callers format RULE with k, tol, k_seed and floor only)
RULE = ("σ = max(reference cell's std over seeds, pooled reference std of that metric: root mean square "
        f"of the cells' stds > 0, each capped at {POOL_CAP:g}× their lower median); disagree when "
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


def _cell_name(row: pd.Series) -> str:
    metric = f"{row['metric']}@{row['k']}" if pd.notna(row["k"]) else str(row["metric"])
    return "/".join(map(str, (row["dataset"], row["method"], row["tag"], row["protocol"], row["split"], metric)))


def check_seeds(df: pd.DataFrame, name: str, splits: tuple[str, ...] = DEFAULT_SPLITS,
                lines: bool = False) -> None:
    """UserError (one line, naming ``name``) when a row of ``splits`` has a seed that is not a whole
    number, or when two rows hold the same cell and seed: a seed would then be counted twice (or
    two settings sharing a tag mixed into one cell). ``lines``: ``df`` is a file as read by
    ``load_results`` (row i on line i + 2), so the lines can be named."""
    sel = _values(df, splits)
    seed = pd.to_numeric(sel["seed"], errors="coerce")
    bad = seed.isna() | (seed != seed.round())
    if bad.any():
        i = bad.idxmax()
        raw = sel.at[i, "seed"]
        raise UserError((f"{name}:{i + 2}:" if lines else f"{name}, row {i}:")
                        + f" seed {'empty' if pd.isna(raw) else repr(raw)} is not a whole number "
                        "(each row is one seed's value of a cell)")
    sel["seed"] = seed.astype("int64")
    twice = sel.duplicated(KEYS + ["seed"], keep=False)
    if twice.any():
        # one text per row, so that empty key fields (NaN, <NA>) compare equal, as duplicated() has it
        key = sel[KEYS + ["seed"]].astype(str).agg("\x1f".join, axis=1)
        first = sel[twice].iloc[0]
        same = sel[key == key[twice].iloc[0]]
        settings = list(dict.fromkeys(same["setting"].astype(str)))
        why = (f"settings {' and '.join(settings)} share the tag {first['tag']!r}" if len(settings) > 1
               else "one seed's rows repeated")
        at = ", ".join(str(i + 2 if lines else i) for i in same.index[:4]) + (", ..." if len(same) > 4 else "")
        raise UserError(f"{name}: seed {first['seed']} of cell {_cell_name(first)} has {len(same)} rows "
                        f"({'lines' if lines else 'rows'} {at}): {why}; each seed must have one row per cell")


def cells(df: pd.DataFrame, splits: tuple[str, ...] = DEFAULT_SPLITS) -> pd.DataFrame:
    """Per cell over seeds: mean and std of the numeric values, seeds ``n``, NaN values ``n_nan``.
    ``n`` counts rows: ``check_seeds`` first, so that a row is a seed."""
    sel = _values(df, splits)
    sel["isnan"] = ~np.isfinite(sel["value"])
    g = sel.groupby(KEYS, dropna=False)
    out = g["value"].agg(mean="mean", std=lambda v: v.std(ddof=1) if v.notna().sum() > 1 else np.nan,
                         n="size")
    out["n_nan"] = g["isnan"].sum().astype(int)
    return out.reset_index()


def _lower_median(v: pd.Series) -> float:
    x = np.sort(v.dropna().to_numpy())
    return float(x[(len(x) - 1) // 2]) if len(x) else np.nan


def reference_scale(ref: pd.DataFrame, cap: float = POOL_CAP) -> pd.Series:
    """σ per reference cell (``cells`` output): the cell's std, at least the pooled std p of its
    dataset/protocol/split/metric@k; p alone for a one-seed cell; 0 when there is nothing to pool.
    p = root mean square of the group's stds > 0, each capped at ``cap`` × the group's lower median
    std, so that one noisy cell (a collapsed reference seed) cannot widen every cell's allowance;
    deterministic (std 0) and one-seed cells measure no seed noise and are left out of p."""
    spread = ref["std"].where(ref["std"] > 0)
    group = [ref[k] for k in POOL_KEYS]
    typical = spread.groupby(group, dropna=False).transform(_lower_median)
    capped = np.minimum(spread, cap * typical)  # NaN stays NaN: no spread, nothing to pool
    pooled = np.sqrt((capped ** 2).groupby(group, dropna=False).transform("mean"))
    return np.fmax(ref["std"], pooled).fillna(0.0)


def _missing_seeds(rerun: pd.DataFrame, reference: pd.DataFrame, splits: tuple[str, ...]) -> pd.DataFrame:
    """Per reference cell whose seeds the rerun lacks some of: ``seeds_missing``, e.g. "1, 3"."""
    on = KEYS + ["seed"]
    ref, got = (_values(df, splits)[on] for df in (reference, rerun))
    # whole numbers (check_seeds), perhaps read as text or float when another split's row has none
    ref, got = (x.assign(seed=pd.to_numeric(x["seed"]).astype("int64")) for x in (ref, got))
    got = got.drop_duplicates()
    m = ref.merge(got, on=on, how="left", indicator=True)
    lost = m[m["_merge"] == "left_only"].sort_values("seed")
    text = lost.groupby(KEYS, dropna=False)["seed"].agg(lambda s: ", ".join(map(str, s)))
    return text.rename("seeds_missing").reset_index()


def compare(rerun: pd.DataFrame, reference: pd.DataFrame, splits: tuple[str, ...] = DEFAULT_SPLITS,
            k_sigma: float = K_SIGMA, tol: float = TOL, k_seed: float = K_SEED,
            floor: float = FLOOR, *, match_seeds: bool = True,
            names: tuple[str, str] = ("rerun", "reference")) -> pd.DataFrame:
    """One row per cell of either table, with ``status`` ∈ {agree, disagree, NaN value, missing in
    rerun, not in reference} and ``why`` (which check failed; the seeds the rerun lacks). UserError
    (``check_seeds``) when a table has a cell's seed twice. ``match_seeds=False`` compares the cells'
    values only, for tables whose seeds differ on purpose (benchmarks/compare_false_alarms.py
    compares disjoint halves of a reference's seeds); a real rerun must have every reference seed."""
    for df, name in zip((rerun, reference), names, strict=True):
        check_seeds(df, name, splits)
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
    if match_seeds:
        m = m.merge(_missing_seeds(rerun, reference, splits), on=KEYS, how="left")
    else:
        m["seeds_missing"] = np.nan
    both = m["_merge"] == "both"
    lacks = both & m["seeds_missing"].notna()
    has_nan = (m["n_nan_rerun"].fillna(0) > 0) | (m["n_nan_ref"].fillna(0) > 0)
    mean_bad = m["delta"].abs() > m["allowed"]
    seed_bad = m["worst_seed"] > m["seed_allowed"]
    m["status"] = np.select(
        [m["_merge"] == "left_only", m["_merge"] == "right_only", lacks, both & has_nan,
         both & (mean_bad | seed_bad)],
        ["not in reference", "missing in rerun", "missing in rerun", "NaN value", "disagree"], "agree")
    checks = pd.Series(np.select(
        [both & has_nan, both & mean_bad & seed_bad, both & mean_bad, both & seed_bad],
        ["NaN", "mean, seed", "mean", "seed"], ""), index=m.index)
    # The seeds the rerun lacks come first: the checks of a cell that lacks seeds ran on fewer seeds.
    plural = m["seeds_missing"].astype(str).str.contains(",").map({True: "seeds ", False: "seed "})
    lost = (plural + m["seeds_missing"].astype(str) + " missing").where(lacks, "")
    m["why"] = [f"{x}; {c}" if x and c else x or c for x, c in zip(lost, checks, strict=True)]
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
             r.status + (f" ({r.why})" if r.why and r.status in ("disagree", "missing in rerun") else "")]
            for r in m.itertuples()]
    return tabulate(rows, headers=["dataset", "method", "setting", "protocol", "split", "metric",
                                   "rerun (n seeds)", "reference (n seeds)", "Δ", "allowed",
                                   "worst seed", "seed allowed", "status"],
                    tablefmt="github")


def run(rerun_path: str, reference_path: str, splits: tuple[str, ...] | None = None,
        k_sigma: float = K_SIGMA, tol: float = TOL, k_seed: float = K_SEED, floor: float = FLOOR) -> int:
    """Print the comparison; 0 when every reference cell agrees, 1 otherwise (a cell or seed missing
    in the rerun, the rerun's last row cut, or no cell compared). UserError for an unknown split, a
    named split the reference lacks (by default, test and best_on_test, at least one of them), an
    unreadable table, or a cell's seed twice in either table."""
    named = splits is not None
    splits = check_splits(tuple(splits)) if named else DEFAULT_SPLITS
    for name, x in (("--k-sigma", k_sigma), ("--k-seed", k_seed), ("--tol", tol), ("--floor", floor)):
        if not np.isfinite(x) or x < 0:
            raise UserError(f"{name} must be a finite number >= 0, got {x}")
    rerun, reference = load_results(rerun_path, partial_ok=True), load_results(reference_path)
    # A cut last row would read as a wrong k or value (a cell only the rerun has, or NaN): load_results
    # set it aside, so that its seed counts as missing; the check fails — the table is incomplete.
    cut = rerun.attrs.get("cut_line")
    absent = [s for s in splits if not (reference["split"] == s).any()]
    # A split named on the command line must be there; of the defaults, one is enough (a study
    # without protocol paper has no best_on_test rows).
    if absent and (named or len(absent) == len(splits)):
        raise UserError(f"{reference_path}: no rows of split {', '.join(map(repr, absent))} "
                        f"(it has: {', '.join(sorted(map(str, reference['split'].dropna().unique())))})")
    for df, path in ((rerun, rerun_path), (reference, reference_path)):
        check_seeds(df, path, splits, lines=True)
    m = compare(rerun, reference, splits, k_sigma, tol, k_seed, floor, names=(rerun_path, reference_path))
    print(format_table(m))
    bad = m[m["status"].isin(BAD)]
    print(f"\nrule: {RULE.format(k=k_sigma, tol=tol, k_seed=k_seed, floor=floor)}; "
          "a reference cell, or a seed of one, missing from the rerun disagrees.")
    if cut is not None:
        print(f"{rerun_path}:{cut}: the last row is cut short (no line end, or fields lost: the file was "
              "still being written, or truncated); it was not read, and the check fails.")
    extra = int((m["status"] == "not in reference").sum())
    n_ref = len(m) - extra
    if n_ref == 0:
        print(f"no reference cells to compare in {reference_path} (splits {', '.join(splits)}) — "
              "nothing was checked, which is a failure.")
        return 1
    counts = m.loc[m["status"].isin(BAD), "status"].value_counts()
    detail = ", ".join(f"{n} {s}" for s, n in counts.items())
    failed = len(bad) > 0 or cut is not None
    print(f"{n_ref - len(bad)} of {n_ref} reference cells agree; {len(bad)} fail the check"
          + (f" ({detail})" if detail else "")
          + (f"; {extra} cells only in the rerun (not compared)" if extra else "")
          + ("; the rerun's last row is cut" if cut is not None else "")
          + (" — the rerun does NOT match the reference." if failed else " — the rerun matches the reference."))
    return 1 if failed else 0
