"""Sweep and ablation tables: every point of a one-parameter sweep of OneBP against its TwoBP
reference at the same setting (``sweep_<param>.*``, ``onebp report tables --sweep``).

The reference is TwoBP at the same value when TwoBP was swept too (N, dim, τ), else TwoBP at its
main setting (β and the ablations of the user update, which TwoBP does not have). Per point: both
means ± std over seeds, the paired effect over users (OneBP − TwoBP, per-user values averaged over
the paired seeds) with a 95 % bootstrap CI, and Holm-corrected p-values across the table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from onebp.report import significance
from onebp.report.figures import sweep_frame
from onebp.report.layout import MAIN, setting_tag
from onebp.report.tables import Table


def sweep_comparison_table(df: pd.DataFrame, runs: pd.DataFrame, param: str, protocol: str = "clean",
                           metric: str = "ndcg@20", method: str = "onebp", reference: str = "twobp",
                           alpha: float = 0.05, digits: int = 4) -> Table:
    data = sweep_frame(df, runs, param, protocol, metric)
    data = data[data["method"].isin([method, reference])]
    if data.empty or method not in set(data["method"]):
        raise ValueError(f"no {method} runs sweeping {param}")
    split = "test" if protocol == "clean" else "best_on_test"
    name, _, k = metric.partition("@")
    tags = df["setting"].astype(str).map(setting_tag)
    ref_main = df[(tags == MAIN) & (df["method"] == reference) & (df["protocol"] == protocol)
                  & (df["split"] == split) & (df["metric"] == name) & (df["k"] == int(k))]
    rows = []
    for ds, d in data.groupby("dataset", sort=False):
        swept_ref = reference in set(d["method"])
        for value, a in d[d["method"] == method].groupby("param", sort=True):
            b = d[(d["method"] == reference) & (d["param"] == value)] if swept_ref else \
                ref_main[ref_main["dataset"] == ds]
            row = {"dataset": ds, param: value, "reference_at": "same value" if swept_ref else "main setting",
                   "mean": a["value"].mean(), "std": a["value"].std(ddof=1) if len(a) > 1 else np.nan,
                   "ref_mean": np.nan, "ref_std": np.nan, "delta": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                   "p_users": np.nan, "p_seeds": np.nan, "n_seeds": len(a)}
            if not b.empty:
                va, vb = a.set_index("seed")["value"].astype(float), b.set_index("seed")["value"].astype(float)
                common = sorted(set(va.index) & set(vb.index))
                row.update(ref_mean=vb.mean(), ref_std=vb.std(ddof=1) if len(vb) > 1 else np.nan,
                           p_seeds=significance.paired_seed_p(va, vb))
                if split == "test":
                    eff = significance.user_effect(sorted(b[b["seed"].isin(common)]["run_dir"].astype(str)),
                                                   sorted(a[a["seed"].isin(common)]["run_dir"].astype(str)), metric)
                    # user_effect gives first − second: make it method − reference
                    row.update(delta=-eff["delta"], ci_low=-eff["ci_high"], ci_high=-eff["ci_low"],
                               p_users=eff["p_users"])
            rows.append(row)
    num = pd.DataFrame(rows)
    for test in ("p_users", "p_seeds"):
        num[f"{test}_holm"] = significance.holm(num[test].to_numpy(float))

    def ms(m: float, s: float) -> str:
        return "" if not np.isfinite(m) else f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if np.isfinite(s) else "")

    def pv(v: float) -> str:
        return "n/a" if not np.isfinite(v) else ("< 1e-4" if v < 1e-4 else f"{v:.4f}")

    cells = pd.DataFrame({
        "dataset": num["dataset"], param: num[param].astype(str),
        method: [ms(m, s) for m, s in zip(num["mean"], num["std"], strict=True)],
        f"{reference}": [ms(m, s) + (" (main)" if at == "main setting" and np.isfinite(m) else "")
                         for m, s, at in zip(num["ref_mean"], num["ref_std"], num["reference_at"], strict=True)],
        f"Δ ({method} − {reference}) [95% CI]": [
            "" if not np.isfinite(r.delta) else f"{r.delta:+.{digits}f} [{r.ci_low:+.{digits}f}, {r.ci_high:+.{digits}f}]"
            for r in num.itertuples()],
        "p users (Holm)": num["p_users_holm"].map(pv),
        "p seeds (Holm)": num["p_seeds_holm"].map(pv),
    })
    caption = (
        f"Sweep of {param}: {method} at each value against {reference} at the same value (when {reference} was "
        f"swept) or at its main setting ('(main)'); {split} {metric}, protocol {protocol!r}, mean ± std over "
        f"seeds. Δ: {significance.EFFECT}. p: {significance.USER_TEST} / {significance.SEED_TEST} (twins "
        f"paired by seed), {significance.HOLM}; α = {alpha}."
    )
    return Table(cells, num, caption)
