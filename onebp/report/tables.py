"""Tables from the long results table (``onebp report tables``).

- main: Recall/NDCG @ 5/10/20 per dataset × method, mean ± std over seeds, best mean in bold per
  dataset and column, markers where a method differs significantly from the reference (OneBP);
- efficiency: median seconds per epoch, time to the selected (best validation) epoch, peak memory.
Each is written as Markdown (tabulate), LaTeX, HTML (for the Snakemake report) and a numeric CSV.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from onebp.report import significance
from onebp.report.layout import MAIN, setting_tag

SEED_MARK = "†"
USER_MARK = "‡"
NAMES = {"recall": "Recall", "ndcg": "NDCG", "precision": "Precision", "hit": "Hit", "mrr": "MRR", "f1": "F1"}


@dataclass
class Table:
    """``cells``: formatted, one row per dataset × method; ``numbers``: the numeric long form."""

    cells: pd.DataFrame
    numbers: pd.DataFrame
    caption: str


def select(df: pd.DataFrame, protocol: str, split: str, tag: str = MAIN) -> pd.DataFrame:
    tags = df["setting"].astype(str).map(setting_tag)
    return df[(df["protocol"] == protocol) & (df["split"] == split) & (tags == tag)]


def _order(values: pd.Series, preferred: list[str] | None) -> list[str]:
    present = list(dict.fromkeys(values))
    if not preferred:
        return present
    return [v for v in preferred if v in present] + [v for v in present if v not in preferred]


def main_table(
    df: pd.DataFrame,
    protocol: str = "clean",
    split: str = "test",
    metrics: tuple[str, ...] = ("recall", "ndcg"),
    ks: tuple[int, ...] = (5, 10, 20),
    reference: str = "onebp",
    alpha: float = 0.05,
    methods: list[str] | None = None,
    datasets: list[str] | None = None,
    digits: int = 4,
) -> Table:
    sel = select(df, protocol, split)
    sel = sel[sel["metric"].isin(metrics) & sel["k"].isin(ks)]
    if sel.empty:
        raise ValueError(f"no results for protocol={protocol!r} split={split!r} metrics={metrics} k={ks}")
    user_test = split == "test"  # per-user arrays are saved at the selected (test) epoch only
    numbers = []
    for (ds, metric, k), g in sel.groupby(["dataset", "metric", "k"], sort=False):
        per_method = {m: gm.set_index("seed")["value"].astype(float) for m, gm in g.groupby("method")}
        runs = {m: sorted(gm["run_dir"].astype(str)) for m, gm in g.groupby("method")}
        means = {m: v.mean() for m, v in per_method.items()}
        best = max(means.values())
        for m, v in per_method.items():
            row = {"p_seeds": np.nan, "delta": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_users": np.nan,
                   "tested_over": ""}
            if m != reference and reference in per_method:
                det = significance.deterministic(v) or significance.deterministic(per_method[reference])
                # Seeds: pairs of twins (same seed). A deterministic method has no seed variation to
                # pair, so it is tested over users only.
                if not det:
                    row["p_seeds"] = significance.paired_seed_p(per_method[reference], v)
                row["tested_over"] = "users only (deterministic)" if det else "seeds and users"
                if user_test:
                    # Pair on the seeds both ran so the per-user averages are comparable.
                    common = set(per_method[reference].index) & set(v.index)
                    ref_runs = g[(g["method"] == reference) & g["seed"].isin(common)]["run_dir"].astype(str)
                    oth_runs = g[(g["method"] == m) & g["seed"].isin(common)]["run_dir"].astype(str)
                    row.update(significance.user_effect(sorted(ref_runs), sorted(oth_runs), f"{metric}@{k}"))
                    row.pop("n_users", None)
            numbers.append(
                {
                    "dataset": ds,
                    "method": m,
                    "metric": metric,
                    "k": int(k),
                    "mean": means[m],
                    "std": v.std(ddof=1) if len(v) > 1 else np.nan,
                    "n_seeds": len(v),
                    "best": bool(np.isclose(means[m], best)),
                    **row,
                    "runs": ";".join(runs[m]),
                }
            )
    num = pd.DataFrame(numbers)
    # Holm–Bonferroni across the cells of this table, each test its own family.
    for test in ("p_seeds", "p_users"):
        num[f"{test}_holm"] = significance.holm(num[test].to_numpy(float))
        num[f"sig_{test.removeprefix('p_')}"] = num[f"{test}_holm"] < alpha
    ds_order = _order(num["dataset"], datasets)
    m_order = _order(num["method"], methods)
    num["_d"] = num["dataset"].map(ds_order.index)
    num["_m"] = num["method"].map(m_order.index)
    num = num.sort_values(["_d", "_m", "metric", "k"]).drop(columns=["_d", "_m"]).reset_index(drop=True)

    columns = [(mt, k) for mt in metrics for k in ks]
    rows = []
    for (ds, m), g in num.groupby(["dataset", "method"], sort=False):
        row = {"dataset": ds, "method": m}
        by = {(r.metric, r.k): r for r in g.itertuples()}
        for mt, k in columns:
            r = by.get((mt, k))
            row[f"{NAMES.get(mt, mt)}@{k}"] = None if r is None else r
        rows.append(row)
    cells = pd.DataFrame(rows)
    caption = (
        f"Test {', '.join(NAMES.get(m, m) for m in metrics)} @ {'/'.join(map(str, ks))}, "
        f"protocol {protocol!r} (split {split!r}); mean ± std over seeds; best mean per dataset in bold. "
        f"{SEED_MARK}: differs from {reference} at p < {alpha} ({significance.SEED_TEST}, twins paired by seed)"
        + (f"; {USER_MARK}: differs from {reference} at p < {alpha} ({significance.USER_TEST})" if user_test else "")
        + f"; p-values {significance.HOLM}. Deterministic methods (the same value for every seed) are tested "
        "over users only. Effect sizes and CIs: the tests table."
    )
    return Table(cells, num, caption)


def comparison_table(main: Table, reference: str = "onebp", alpha: float = 0.05, digits: int = 4) -> Table:
    """The statistics behind the main table's markers, one row per compared cell: both means, the
    paired effect over users (``reference − method``) with its 95 % bootstrap CI, and both
    Holm-corrected p-values."""
    num = main.numbers[main.numbers["method"] != reference].copy()
    if num.empty:
        raise ValueError(f"nothing compared with {reference!r}")
    ref = main.numbers[main.numbers["method"] == reference].set_index(["dataset", "metric", "k"])["mean"]
    num["reference_mean"] = [ref.get((r.dataset, r.metric, r.k), np.nan) for r in num.itertuples()]

    def f(v: float) -> str:
        return "" if not np.isfinite(v) else f"{v:.{digits}f}"

    def pv(v: float) -> str:
        return "n/a" if not np.isfinite(v) else ("< 1e-4" if v < 1e-4 else f"{v:.4f}")

    cells = pd.DataFrame({
        "dataset": num["dataset"],
        "method": num["method"],
        "metric": [f"{NAMES.get(r.metric, r.metric)}@{r.k}" for r in num.itertuples()],
        reference: num["reference_mean"].map(f),
        "method mean": num["mean"].map(f),
        f"Δ ({reference} − method) [95% CI]": [
            "" if not np.isfinite(r.delta) else f"{r.delta:+.{digits}f} [{r.ci_low:+.{digits}f}, {r.ci_high:+.{digits}f}]"
            for r in num.itertuples()],
        "p users (Holm)": num["p_users_holm"].map(pv),
        "p seeds (Holm)": num["p_seeds_holm"].map(pv),
        "tested over": num["tested_over"],
    })
    caption = (
        f"Paired comparisons with {reference} behind the main table. Δ: {significance.EFFECT}; positive = "
        f"{reference} better. p users: {significance.USER_TEST}; p seeds: {significance.SEED_TEST}, twins "
        f"paired by seed; both {significance.HOLM}; significant at α = {alpha}. n/a: not computed "
        "(deterministic method: users only)."
    )
    return Table(cells, num.reset_index(drop=True), caption)


def _fmt(r, digits: int, style: str) -> str:
    if r is None:
        return ""
    pm = {"md": " ± ", "tex": r" $\pm$ ", "html": " ± "}[style]
    s = f"{r.mean:.{digits}f}" + (f"{pm}{r.std:.{digits}f}" if np.isfinite(r.std) else "")
    if r.best:
        s = {"md": f"**{s}**", "tex": rf"\textbf{{{s}}}", "html": f"<b>{s}</b>"}[style]
    marks = (SEED_MARK if r.sig_seeds else "") + (USER_MARK if r.sig_users else "")
    if marks:
        s += {"md": marks, "html": marks, "tex": "$^{" + marks.replace(SEED_MARK, r"\dagger").replace(USER_MARK, r"\ddagger") + "}$"}[style]
    return s


def render(table: Table, style: str, digits: int = 4) -> pd.DataFrame:
    out = table.cells.copy()
    for c in out.columns[2:]:
        out[c] = out[c].map(lambda r: _fmt(r, digits, style))
    return out


def _tex_escape(s: str) -> str:
    return str(s).replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")


def _tex_caption(caption: str) -> str:
    out = _tex_escape(caption).replace("±", r"$\pm$")
    return out.replace(SEED_MARK, r"$^\dagger$").replace(USER_MARK, r"$^\ddagger$")


def to_latex(frame: pd.DataFrame, caption: str, label: str) -> str:
    cols = list(frame.columns)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{" + _tex_caption(caption) + "}",
        rf"\label{{{label}}}",
        r"\begin{tabular}{" + "l" * 2 + "r" * (len(cols) - 2) + "}",
        r"\toprule",
        " & ".join(_tex_escape(c) for c in cols) + r" \\",
        r"\midrule",
    ]
    prev = None
    for row in frame.itertuples(index=False):
        if prev is not None and row[0] != prev:
            lines.append(r"\midrule")
        prev = row[0]
        cells = [_tex_escape(row[0]), _tex_escape(row[1])] + [str(v) for v in row[2:]]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def write_table(table: Table, prefix: str | Path, label: str, digits: int = 4) -> list[Path]:
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    md = render(table, "md", digits)
    paths = {
        "md": tabulate(md, headers="keys", tablefmt="github", showindex=False, disable_numparse=True) + f"\n\n{table.caption}\n",
        "tex": to_latex(render(table, "tex", digits), table.caption, label),
        "html": render(table, "html", digits).to_html(index=False, escape=False)
        + f"\n<p>{table.caption}</p>\n",
    }
    out = []
    for ext, text in paths.items():
        p = prefix.with_suffix(f".{ext}")
        p.write_text(text)
        out.append(p)
    p = prefix.with_suffix(".csv")
    table.numbers.to_csv(p, index=False)
    out.append(p)
    return out


def efficiency_table(
    df: pd.DataFrame,
    protocol: str = "clean",
    methods: list[str] | None = None,
    datasets: list[str] | None = None,
) -> Table:
    """Per dataset × method, over seeds: median of each run's median epoch time, etc."""
    tags = df["setting"].astype(str).map(setting_tag)
    sel = df[(df["protocol"] == protocol) & (tags == MAIN) & df["split"].isin(["timing", "memory", "train"])]
    if sel.empty:
        raise ValueError(f"no timing rows for protocol={protocol!r}")
    wide = sel.pivot_table(index=["dataset", "method", "seed"], columns="metric", values="value", aggfunc="first")
    agg = {
        "epoch_seconds_median": ("median", "s / epoch (median)"),
        "eval_seconds_median": ("median", "s / eval (median)"),
        "seconds_to_selected": ("median", "s to best valid epoch"),
        "selected_epoch": ("median", "best epoch"),
        "train_seconds_total": ("median", "train s total"),
        "peak_rss_mb": ("max", "peak RSS MB"),
        "peak_gpu_mb": ("max", "peak GPU MB"),
    }
    rows = []
    for (ds, m), g in wide.groupby(level=["dataset", "method"], sort=False):
        row = {"dataset": ds, "method": m, "n_seeds": len(g)}
        for col, (how, _) in agg.items():
            row[col] = getattr(g[col].astype(float), how)() if col in g else np.nan
        rows.append(row)
    num = pd.DataFrame(rows)
    ds_order, m_order = _order(num["dataset"], datasets), _order(num["method"], methods)
    num = num.assign(_d=num["dataset"].map(ds_order.index), _m=num["method"].map(m_order.index))
    num = num.sort_values(["_d", "_m"]).drop(columns=["_d", "_m"]).reset_index(drop=True)
    cells = num[["dataset", "method"]].copy()
    for col, (_, title) in agg.items():
        cells[title] = num[col].map(lambda v: "" if not np.isfinite(v) else f"{v:.3g}" if v < 100 else f"{v:.0f}")
    cells["seeds"] = num["n_seeds"].astype(str)
    caption = (
        f"Efficiency, protocol {protocol!r}, from the study's own train jobs (which may have shared the "
        "machine's cores: the benchmark rule's table is the one to believe): per-run median seconds per "
        "training epoch and per evaluation (median over seeds), wall seconds until the selected epoch, peak "
        "resident (CPU) and GPU memory (max over seeds)."
    )
    return Table(cells, num, caption)


def write_plain(table: Table, prefix: str | Path, label: str) -> list[Path]:
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    out = {
        ".md": tabulate(table.cells, headers="keys", tablefmt="github", showindex=False,
                         disable_numparse=True) + f"\n\n{table.caption}\n",
        ".tex": to_latex(table.cells, table.caption, label),
        ".html": table.cells.to_html(index=False) + f"\n<p>{table.caption}</p>\n",
    }
    paths = []
    for ext, text in out.items():
        p = prefix.with_suffix(ext)
        p.write_text(text)
        paths.append(p)
    p = prefix.with_suffix(".csv")
    table.numbers.to_csv(p, index=False)
    return [*paths, p]
