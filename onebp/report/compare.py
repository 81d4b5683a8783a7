"""``onebp report compare RESULTS.csv REFERENCE.csv``: does a rerun match the shipped reference?

A cell is one (dataset, method, setting tag, protocol, split, metric@k) of the long results table
(settings are compared by tag — ``main``, ``beta=0.9`` — not by hash, which also hashes where the
data came from). Per cell, over seeds: mean, std and count on both sides. The rule:

    disagree  ⇔  |mean_rerun − mean_reference| > max(K · SE_diff, tol),
    SE_diff = sqrt(s_r² / n_r + s_f² / n_f)

with K = 3 and ``tol`` = 1e-4 by default. A side with one seed borrows the other side's std (its own
is unknown); with one seed on both sides SE_diff is 0 and only ``tol`` applies. A reference cell that
the rerun lacks disagrees too; cells only the rerun has are listed but do not count. Reruns on the
same hardware with the same seeds reproduce the reference bit for bit (Δ = 0); on other hardware
the seed-to-seed spread says how far a value may move.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from tabulate import tabulate

from onebp.report.collect import load_results
from onebp.report.layout import setting_tag

KEYS = ["dataset", "method", "tag", "protocol", "split", "metric", "k"]
DEFAULT_SPLITS = ("test", "best_on_test")
K_SIGMA = 3.0
TOL = 1e-4
RULE = "disagree when |Δmean| > max({k:g} · SE_diff, {tol:g}), SE_diff = sqrt(s_r²/n_r + s_f²/n_f) over seeds"


def cells(df: pd.DataFrame, splits: tuple[str, ...] = DEFAULT_SPLITS) -> pd.DataFrame:
    sel = df[df["split"].isin(splits)].copy()
    sel["tag"] = sel["setting"].astype(str).map(setting_tag)
    sel["k"] = sel["k"].astype("Int64")
    return (sel.groupby(KEYS, dropna=False)["value"]
            .agg(mean="mean", std=lambda v: v.std(ddof=1) if len(v) > 1 else np.nan, n="size")
            .reset_index())


def compare(rerun: pd.DataFrame, reference: pd.DataFrame, splits: tuple[str, ...] = DEFAULT_SPLITS,
            k_sigma: float = K_SIGMA, tol: float = TOL) -> pd.DataFrame:
    """One row per cell of either table, with ``status`` ∈ {agree, disagree, missing in rerun, not in
    reference}."""
    a, b = cells(rerun, splits), cells(reference, splits)
    m = a.merge(b, on=KEYS, how="outer", suffixes=("_rerun", "_ref"), indicator=True)
    s_r = m["std_rerun"].where(m["n_rerun"] > 1, m["std_ref"]).fillna(0.0)
    s_f = m["std_ref"].where(m["n_ref"] > 1, m["std_rerun"]).fillna(0.0)
    m["se_diff"] = np.sqrt(s_r**2 / m["n_rerun"].fillna(1) + s_f**2 / m["n_ref"].fillna(1))
    m["delta"] = m["mean_rerun"] - m["mean_ref"]
    m["allowed"] = np.maximum(k_sigma * m["se_diff"], tol)
    m["status"] = np.where(m["_merge"] == "left_only", "not in reference",
                           np.where(m["_merge"] == "right_only", "missing in rerun",
                                    np.where(m["delta"].abs() > m["allowed"], "disagree", "agree")))
    return m.drop(columns="_merge").sort_values(KEYS).reset_index(drop=True)


def format_table(m: pd.DataFrame) -> str:
    def side(mean: float, std: float, n: float) -> str:
        if not np.isfinite(mean):
            return ""
        return f"{mean:.4f}" + (f" ± {std:.4f}" if np.isfinite(std) else "") + f" ({int(n)})"

    rows = [[r.dataset, r.method, r.tag, r.protocol, r.split,
             f"{r.metric}@{r.k}" if pd.notna(r.k) else r.metric,
             side(r.mean_rerun, r.std_rerun, r.n_rerun), side(r.mean_ref, r.std_ref, r.n_ref),
             "" if not np.isfinite(r.delta) else f"{r.delta:+.4f}",
             "" if not np.isfinite(r.allowed) else f"{r.allowed:.4f}", r.status]
            for r in m.itertuples()]
    return tabulate(rows, headers=["dataset", "method", "setting", "protocol", "split", "metric",
                                   "rerun (n seeds)", "reference (n seeds)", "Δ", "allowed", "status"],
                    tablefmt="github")


def run(rerun_path: str, reference_path: str, splits: tuple[str, ...] = DEFAULT_SPLITS,
        k_sigma: float = K_SIGMA, tol: float = TOL) -> int:
    """Print the comparison; 0 when every reference cell agrees, 1 otherwise."""
    m = compare(load_results(rerun_path), load_results(reference_path), splits, k_sigma, tol)
    print(format_table(m))
    bad = m[m["status"].isin(["disagree", "missing in rerun"])]
    print(f"\nrule: {RULE.format(k=k_sigma, tol=tol)}; a reference cell missing from the rerun disagrees.")
    extra = int((m["status"] == "not in reference").sum())
    n_ref = len(m) - extra
    print(f"{n_ref - len(bad)} of {n_ref} reference cells agree; {len(bad)} disagree"
          + (f"; {extra} cells only in the rerun (not compared)" if extra else "")
          + (" — the rerun does NOT match the reference." if len(bad) else " — the rerun matches the reference."))
    return 1 if len(bad) else 0
