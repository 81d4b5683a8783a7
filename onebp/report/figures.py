"""Figures from the long results table and the run directories it points to (``onebp report figures``).

Every figure is written as PNG (for the Snakemake report) and PDF (for papers):
- ``curves``: validation metric per epoch (mean and sd over seeds) per dataset, one line per method,
  each method its own colour *and* dash pattern (``method_styles``) so a dozen stay distinguishable;
- ``time_quality``: test metric against training wall time, one point per run;
- ``epoch_time`` and ``memory``: bars per method (median s / epoch; peak RSS and GPU memory) — from
  the dedicated benchmark (``results/bench/*.json``, every repeat a point, bars the median, whiskers
  min–max) when given, else from the study's runs (which may have shared cores);
- ``sweep_<param>``: test metric against a swept hyper-parameter, one line per swept method with a
  band of ± 1 std over seeds; a method in the figure's datasets that was not swept (TwoBP in the β
  sweep) is drawn as a horizontal reference line at its main setting, with its band. Where one
  setting dwarfs the others (``off_scale``: the frozen-user control at NDCG 0.06 beside 0.42), a second
  panel shows the rest on their own scale, so a difference of 0.007 between them is visible;
- ``protocol_gap``: best-on-test (protocol paper) minus the validation-selected test value (protocol
  clean) per method, mean over seeds with ± 1 std.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: cluster nodes and CI have no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from onebp.errors import UserError  # noqa: E402
from onebp.report.layout import MAIN, setting_tag  # noqa: E402


def _save(fig: plt.Figure, out_dir: Path, name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    for p in paths:
        fig.savefig(p, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return paths


def _empty(out_dir: Path, name: str, why: str) -> list[Path]:
    """A placeholder saying why a figure has no data, so the DAG's outputs always exist."""
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, f"{name}: {why}", ha="center", va="center", wrap=True)
    return _save(fig, out_dir, name)


def _main(df: pd.DataFrame, protocol: str) -> pd.DataFrame:
    return df[(df["protocol"] == protocol) & (df["setting"].astype(str).map(setting_tag) == MAIN)]


def curves_frame(df: pd.DataFrame, protocol: str, column: str) -> pd.DataFrame:
    runs = _main(df, protocol)[["dataset", "method", "seed", "run_dir"]].drop_duplicates()
    parts = []
    for r in runs.itertuples():
        path = Path(r.run_dir) / "curve.csv"
        if not path.exists():
            raise UserError(f"{path}: missing — the run's learning curve (is the run finished, and its "
                            "directory complete?)")
        c = pd.read_csv(path)
        if column not in c:
            continue
        c = c[["epoch", column]].dropna()
        parts.append(c.assign(dataset=r.dataset, method=r.method, seed=r.seed).rename(columns={column: "value"}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


#: dash patterns cycled with the colours: colour i % 10 with dash i % 4 is a distinct pair for 20 methods,
#: and neighbours in the legend differ in both (so they also part in grey-scale print)
DASHES: tuple = ("", (4, 1.5), (1, 1), (3, 1, 1, 1))


def method_styles(methods: Sequence[str]) -> dict[str, tuple[tuple[float, float, float], object]]:
    """Per method (in the given order) its (colour, dash pattern)."""
    colors = sns.color_palette("tab10", 10)
    return {m: (colors[i % 10], DASHES[i % len(DASHES)]) for i, m in enumerate(methods)}


def off_scale(values: Mapping[Hashable, float], factor: float = 5.0) -> list[Hashable]:
    """The values that would squash the others on one axis. The *core* is the largest run of
    neighbouring values (sorted; more than half of them, at least two, not all) such that every value
    outside it lies farther from it than ``factor`` × the core's own range; the values outside the core
    are off scale (none when no such core exists). E.g. {0.058, 0.419, 0.420, 0.4215, 0.4285}: the core
    0.419-0.4285 (range 0.0095) lies 0.36 from 0.058 -> 0.058 is off scale."""
    items = sorted(((float(v), k) for k, v in values.items() if np.isfinite(v)), key=lambda t: t[0])
    n = len(items)
    best: tuple[int, float, int, int] | None = None  # (-size, range, i, j)
    for i in range(n):
        for j in range(i + 1, n):
            size = j - i + 1
            if size == n or size <= n / 2:
                continue
            span = items[j][0] - items[i][0]
            below = items[i][0] - items[i - 1][0] if i > 0 else np.inf
            above = items[j + 1][0] - items[j][0] if j + 1 < n else np.inf
            if min(below, above) > factor * max(span, 1e-12):
                cand = (-size, span, i, j)
                best = cand if best is None or cand < best else best
    if best is None:
        return []
    _, _, i, j = best
    return [k for _, k in items[:i]] + [k for _, k in items[j + 1:]]


def fig_curves(df: pd.DataFrame, out_dir: Path, protocol: str, metric: str) -> list[Path]:
    # Under protocol paper there is no validation split: the curve is the test metric per epoch.
    split = "valid" if protocol == "clean" else "test"
    data = curves_frame(df, protocol, f"{split}/{metric}")
    if data.empty:
        return _empty(out_dir, "curves", f"no {split}/{metric} curves")
    styles = method_styles(list(dict.fromkeys(data["method"])))
    g = sns.relplot(
        data=data, x="epoch", y="value", hue="method", style="method", col="dataset", kind="line",
        palette={m: c for m, (c, _) in styles.items()}, dashes={m: d for m, (_, d) in styles.items()},
        errorbar="sd", facet_kws={"sharey": False, "sharex": False}, height=3, aspect=1.2, col_wrap=min(4, data["dataset"].nunique()),
    )
    g.set_axis_labels("epoch", f"{split} {metric}")
    return _save(g.figure, out_dir, "curves")


def _wide_runs(df: pd.DataFrame, protocol: str) -> pd.DataFrame:
    sel = _main(df, protocol)
    sel = sel.assign(col=sel["split"] + "/" + sel["metric"] + sel["k"].map(lambda k: "" if pd.isna(k) else f"@{k}"))
    return sel.pivot_table(index=["dataset", "method", "seed"], columns="col", values="value", aggfunc="first").reset_index()


def fig_time_quality(df: pd.DataFrame, out_dir: Path, protocol: str, metric: str) -> list[Path]:
    split = "test" if protocol == "clean" else "best_on_test"
    w = _wide_runs(df, protocol)
    y, x = f"{split}/{metric}", "timing/train_seconds_total"
    if w.empty or y not in w or x not in w:
        return _empty(out_dir, "time_quality", f"no {y} or {x}")
    g = sns.relplot(data=w, x=x, y=y, hue="method", style="method", col="dataset", s=60,
                    facet_kws={"sharey": False, "sharex": False}, height=3, aspect=1.2,
                    col_wrap=min(4, w["dataset"].nunique()))
    g.set_axis_labels("training wall time (s)", f"{split} {metric}")
    return _save(g.figure, out_dir, "time_quality")


def fig_epoch_time(df: pd.DataFrame, out_dir: Path, protocol: str) -> list[Path]:
    w = _wide_runs(df, protocol)
    col = "timing/epoch_seconds_median"
    if w.empty or col not in w:
        return _empty(out_dir, "epoch_time", "no timing")
    g = sns.catplot(data=w, x="method", y=col, col="dataset", kind="bar", estimator="median", errorbar=None,
                    sharey=False, height=3, aspect=1.2, col_wrap=min(4, w["dataset"].nunique()))
    g.set_axis_labels("", "seconds per epoch (median)")
    g.tick_params(axis="x", rotation=45)
    return _save(g.figure, out_dir, "epoch_time")


def fig_memory(df: pd.DataFrame, out_dir: Path, protocol: str) -> list[Path]:
    sel = _main(df, protocol)
    sel = sel[sel["split"] == "memory"]
    if sel.empty:
        return _empty(out_dir, "memory", "no memory rows")
    sel = sel.assign(kind=sel["metric"].map({"peak_rss_mb": "CPU (RSS)", "peak_gpu_mb": "GPU (training)",
                                                "peak_gpu_eval_mb": "GPU (evaluation)"}).fillna(sel["metric"]))
    g = sns.catplot(data=sel, x="method", y="value", hue="kind", col="dataset", kind="bar", estimator="max",
                    errorbar=None, sharey=False, height=3, aspect=1.2, col_wrap=min(4, sel["dataset"].nunique()))
    g.set_axis_labels("", "peak memory (MB)")
    g.tick_params(axis="x", rotation=45)
    return _save(g.figure, out_dir, "memory")


def sweep_frame(df: pd.DataFrame, runs: pd.DataFrame, param: str, protocol: str, metric: str) -> pd.DataFrame:
    """Runs of settings ``main`` and ``<param>=...`` with the parameter's resolved value."""
    split = "test" if protocol == "clean" else "best_on_test"
    name, _, k = metric.partition("@")
    tags = df["setting"].astype(str).map(setting_tag)
    sel = df[(df["protocol"] == protocol) & (df["split"] == split) & (df["metric"] == name)
             & (df["k"] == int(k)) & ((tags == MAIN) | tags.str.startswith(f"{param}="))]
    cfg = {r.run_dir: json.loads(r.config) for r in runs.itertuples()}
    sel = sel.assign(param=sel["run_dir"].map(lambda d: cfg.get(d, {}).get(param)))
    sel = sel.dropna(subset=["param"])
    # Keep only (dataset, method) pairs that were actually swept, not every method's main setting.
    swept = sel[tags.loc[sel.index] != MAIN][["dataset", "method"]].drop_duplicates()
    return sel.merge(swept, on=["dataset", "method"])


def sweep_figure(df: pd.DataFrame, runs: pd.DataFrame, param: str, protocol: str, metric: str,
                 reference_methods: tuple[str, ...] = ("twobp", "onebp")) -> plt.Figure | None:
    """The sweep figure (None when nothing swept ``param``): per dataset a panel with every setting and,
    when some setting is ``off_scale``, a second panel with the others on their own scale."""
    data = sweep_frame(df, runs, param, protocol, metric)
    if data.empty:
        return None
    numeric = pd.to_numeric(data["param"], errors="coerce")
    is_num = bool(numeric.notna().all())
    data = data.assign(param=numeric if is_num else data["param"].astype(str))
    split = "test" if protocol == "clean" else "best_on_test"
    mname, _, k = metric.partition("@")
    main = _main(df, protocol)
    main = main[(main["split"] == split) & (main["metric"] == mname) & (main["k"] == int(k))]
    datasets = list(dict.fromkeys(data["dataset"]))
    palette = dict(zip(sorted(set(data["method"]) | set(reference_methods)), sns.color_palette(), strict=False))
    panels = []  # (dataset, what to leave out, title)
    for ds in datasets:
        d = data[data["dataset"] == ds]
        stats = {(m, v): x for (m, v), x in d.groupby(["method", "param"])["value"].mean().items()}
        for m in reference_methods:
            if m not in set(d["method"]):
                v = main[(main["dataset"] == ds) & (main["method"] == m)]["value"].astype(float)
                if not v.empty:
                    stats[(m, None)] = v.mean()
        off = off_scale(stats)
        panels.append((ds, set(), ds))
        if off:
            names = ", ".join(str(v) if v is not None else f"{m} (main)" for m, v in off)
            panels.append((ds, set(off), f"{ds}: without {names} (own scale)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, (ds, leave_out, title) in zip(axes[0], panels, strict=True):
        d = data[data["dataset"] == ds]
        order = sorted(d["param"].unique(), key=lambda v: (v if is_num else str(v)))
        xpos = {v: (v if is_num else i) for i, v in enumerate(order)}
        for m, gm in d.groupby("method"):
            st = gm.groupby("param")["value"].agg(["mean", "std", "size"]).reindex(order).dropna(subset=["mean"])
            st = st[[(m, v) not in leave_out for v in st.index]]
            x = [xpos[v] for v in st.index]
            sd = st["std"].fillna(0.0)
            if is_num:  # a line with a band
                ax.plot(x, st["mean"], marker="o", color=palette[m], label=f"{m} (swept)")
                ax.fill_between(x, st["mean"] - sd, st["mean"] + sd, color=palette[m], alpha=0.2)
            else:  # categories (e.g. the ablations): points with ± 1 std bars, no line between them
                ax.errorbar(x, st["mean"], yerr=sd, fmt="o", capsize=4, color=palette[m], label=f"{m} (swept)")
        # methods present at their main setting but not swept here: a reference line with its band
        for m in reference_methods:
            if m in set(d["method"]) or (m, None) in leave_out:
                continue
            v = main[(main["dataset"] == ds) & (main["method"] == m)]["value"].astype(float)
            if v.empty:
                continue
            mu, sd = v.mean(), (v.std(ddof=1) if len(v) > 1 else 0.0)
            ax.axhline(mu, color=palette[m], ls="--", label=f"{m} (main setting)")
            ax.axhspan(mu - sd, mu + sd, color=palette[m], alpha=0.12)
        if is_num and min(order) > 0 and max(order) / min(order) >= 100:
            ax.set_xscale("log")
        if not is_num:  # every category keeps its place, so the two panels line up
            ax.set_xticks(range(len(order)), [str(v) for v in order], rotation=30)
            ax.set_xlim(-0.5, len(order) - 0.5)
        ax.set_title(title, fontsize=9 if leave_out else None)
        ax.set_xlabel(param)
        ax.set_ylabel(f"{split} {metric}")
        ax.legend(fontsize=7)
    fig.suptitle(f"sweep of {param}: mean ± 1 std over seeds", fontsize=9)
    return fig


def fig_sweep(df: pd.DataFrame, runs: pd.DataFrame, out_dir: Path, param: str, protocol: str, metric: str,
              reference_methods: tuple[str, ...] = ("twobp", "onebp")) -> list[Path]:
    name = f"sweep_{param}"
    fig = sweep_figure(df, runs, param, protocol, metric, reference_methods)
    if fig is None:
        return _empty(out_dir, name, f"no runs sweeping {param}")
    return _save(fig, out_dir, name)


def fig_protocol_gap(df: pd.DataFrame, out_dir: Path, metric: str) -> list[Path]:
    from onebp.report.protocol_gap import gap_frame

    mname, _, k = metric.partition("@")
    data = gap_frame(df, (mname,), int(k))
    if data.empty:
        return _empty(out_dir, "protocol_gap", "no (dataset, method, seed) ran both protocols")
    g = sns.catplot(data=data, x="method", y="gap", col="dataset", kind="bar", errorbar="sd",
                    sharey=False, height=3, aspect=1.3, col_wrap=min(4, data["dataset"].nunique()))
    g.set_axis_labels("", f"{metric}: best-on-test (paper) − selected (clean)")
    g.tick_params(axis="x", rotation=45)
    for ax in g.axes.flat:
        ax.axhline(0.0, color="black", lw=0.8)
    return _save(g.figure, out_dir, "protocol_gap")


def fig_bench_epoch_time(bench: pd.DataFrame, out_dir: Path) -> list[Path]:
    g = sns.catplot(data=bench, x="method", y="epoch_seconds_median", col="dataset", kind="bar",
                    estimator="median", errorbar=("pi", 100), sharey=False, height=3, aspect=1.2,
                    col_wrap=min(4, bench["dataset"].nunique()))
    for ax, (_, d) in zip(g.axes.flat, bench.groupby("dataset", sort=False), strict=False):
        sns.stripplot(data=d, x="method", y="epoch_seconds_median", ax=ax, color="black", size=3)
    g.set_axis_labels("", "s / epoch (benchmark: median, min–max)")
    g.tick_params(axis="x", rotation=45)
    return _save(g.figure, out_dir, "epoch_time")


def fig_bench_memory(bench: pd.DataFrame, out_dir: Path) -> list[Path]:
    cols = {"peak_rss_train_mb": "train RSS", "peak_gpu_train_mb": "train GPU", "peak_gpu_eval_mb": "eval GPU"}
    present = [c for c in cols if c in bench and pd.to_numeric(bench[c], errors="coerce").notna().any()]
    long = bench.melt(id_vars=["dataset", "method"], value_vars=present, var_name="kind", value_name="MB")
    long = long.assign(kind=long["kind"].map(cols), MB=pd.to_numeric(long["MB"], errors="coerce")).dropna()
    g = sns.catplot(data=long, x="method", y="MB", hue="kind", col="dataset", kind="bar", estimator="median",
                    errorbar=("pi", 100), sharey=False, height=3, aspect=1.2,
                    col_wrap=min(4, long["dataset"].nunique()))
    g.set_axis_labels("", "peak memory (MB; benchmark)")
    g.tick_params(axis="x", rotation=45)
    return _save(g.figure, out_dir, "memory")


def all_figures(
    df: pd.DataFrame, runs: pd.DataFrame, out_dir: str | Path, protocol: str, metric: str, sweeps: list[str],
    bench: pd.DataFrame | None = None, protocol_gap: bool = False,
) -> list[Path]:
    out_dir = Path(out_dir)
    sns.set_theme(style="whitegrid", context="paper")
    paths = fig_curves(df, out_dir, protocol, metric)
    paths += fig_time_quality(df, out_dir, protocol, metric)
    if bench is not None and not bench.empty:
        paths += fig_bench_epoch_time(bench, out_dir) + fig_bench_memory(bench, out_dir)
    else:
        paths += fig_epoch_time(df, out_dir, protocol)
        paths += fig_memory(df, out_dir, protocol)
    for p in sweeps:
        paths += fig_sweep(df, runs, out_dir, p, protocol, metric)
    if protocol_gap:
        paths += fig_protocol_gap(df, out_dir, metric)
    return paths
