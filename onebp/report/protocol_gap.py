"""The protocol gap: how optimistic choosing the epoch on the test set is.

For every (dataset, method) and metric: best-on-test under protocol ``paper`` (the best test value
over all evaluated epochs, chosen on the test set, as the official code reports) minus the test value
at the validation-selected epoch under protocol ``clean``. Runs are paired by seed (twins of the
same seed), the gap is given as mean ± std over the paired seeds.

Both protocols train on their own split: ``paper`` on the whole train part, ``clean`` on train minus
the validation carve-out. The gap therefore also contains the effect of that extra training data; it
is the difference a reader of a best-on-test table sees, not the selection optimism alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from onebp.report.layout import MAIN, setting_tag
from onebp.report.tables import NAMES, Table, _order

CAPTION = (
    "Protocol gap: best-on-test under protocol 'paper' (best test value over all epochs, chosen on the "
    "test set) minus the test value at the validation-selected epoch under protocol 'clean', paired "
    "by seed, mean ± std over seeds; in parentheses relative to the clean value. Positive = the paper "
    "protocol's figure is higher. The paper runs also train on the validation carve-out (10 % more "
    "training data), which is part of the gap."
)


def gap_frame(df: pd.DataFrame, metrics: tuple[str, ...] = ("recall", "ndcg"), k: int = 20) -> pd.DataFrame:
    """One row per dataset × method × metric × seed with both values and their difference."""
    main = df[df["setting"].astype(str).map(setting_tag) == MAIN]
    main = main[main["metric"].isin(metrics) & (main["k"] == k)]
    paper = main[(main["protocol"] == "paper") & (main["split"] == "best_on_test")]
    clean = main[(main["protocol"] == "clean") & (main["split"] == "test")]
    keys = ["dataset", "method", "metric", "seed"]
    both = paper[keys + ["value", "run_dir"]].merge(clean[keys + ["value", "run_dir"]], on=keys,
                                                      suffixes=("_paper", "_clean"))
    both["gap"] = both["value_paper"].astype(float) - both["value_clean"].astype(float)
    both["k"] = k
    return both


def protocol_gap_table(df: pd.DataFrame, metrics: tuple[str, ...] = ("recall", "ndcg"), k: int = 20,
                       methods: list[str] | None = None, datasets: list[str] | None = None,
                       digits: int = 4) -> Table:
    pairs = gap_frame(df, metrics, k)
    if pairs.empty:
        raise ValueError("protocol gap: no (dataset, method, seed) has both a paper and a clean run")
    num = (pairs.groupby(["dataset", "method", "metric"], sort=False)
           .agg(paper=("value_paper", "mean"), clean=("value_clean", "mean"), gap=("gap", "mean"),
                gap_std=("gap", lambda g: g.std(ddof=1) if len(g) > 1 else np.nan), n_seeds=("gap", "size"))
           .reset_index())
    num["k"] = k
    num["relative"] = num["gap"] / num["clean"]
    ds_order, m_order = _order(num["dataset"], datasets), _order(num["method"], methods)
    num = num.assign(_d=num["dataset"].map(ds_order.index), _m=num["method"].map(m_order.index))
    num = num.sort_values(["_d", "_m", "metric"]).drop(columns=["_d", "_m"]).reset_index(drop=True)
    rows = []
    for (ds, m), g in num.groupby(["dataset", "method"], sort=False):
        row = {"dataset": ds, "method": m}
        for r in g.itertuples():
            name = f"{NAMES.get(r.metric, r.metric)}@{k}"
            row[f"{name} paper"] = f"{r.paper:.{digits}f}"
            row[f"{name} clean"] = f"{r.clean:.{digits}f}"
            sd = f" ± {r.gap_std:.{digits}f}" if np.isfinite(r.gap_std) else ""
            row[f"{name} gap"] = f"{r.gap:+.{digits}f}{sd} ({100 * r.relative:+.1f} %)"
        row["seeds"] = str(int(g["n_seeds"].min()))
        rows.append(row)
    return Table(pd.DataFrame(rows), num, CAPTION)
