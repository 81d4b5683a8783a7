"""The robustness matrix: each claim's verdict on every dataset and budget the studies hold.

``onebp report claims --results A --results B …`` reads several results sources — a ``results.csv``
or a folder holding one (a frozen reference, ``results/reference/<name>/``) — and writes one row per
claim (and metric), one column per (source, dataset) with the verdict and the effect, and an
*overall* column:

- **holds everywhere** / **fails everywhere** / **inconclusive everywhere**: the same verdict (supported /
  not supported / inconclusive) in every column;
- **budget-bound somewhere**: some column's verdict is budget-bound (``claims.BUDGET_RULE``), so at
  least one budget did not decide the claim — read that column's direction and the others; the raw
  statistical verdicts, summarised the same way, follow in parentheses;
- **depends on the dataset** (verdicts differ between datasets), **depends on the budget** (they
  differ only between budgets of one dataset), or both;
- "(one dataset only)" when every column is the same dataset, "(cap: unknown somewhere)" when some
  column could not judge its cap.

A column is labelled by its dataset, its epoch cap (median over the reference method's main runs) and
the source's label (``--label``, else the folder's name), so two budgets of one dataset are told apart.

A frozen reference keeps no per-user arrays (``per_user_test.npz``), which the user-level tests need;
for such a source the statistics (effect, CI, p, the raw verdict) are read from the claims table frozen
with it (``tables/claims.csv``, written by the same code when the runs were on disk) and only the cap
columns and the budget verdict are recomputed — the matrix's notes say which sources were read so.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from onebp.errors import UserError
from onebp.report import claims as C
from onebp.report.epoch_cap import cap_frame, resolve_run_dir
from onebp.report.layout import MAIN, setting_tag

HOLDS, FAILS, INCONCLUSIVE_ALL = "holds everywhere", "fails everywhere", "inconclusive everywhere"
BUDGET_SOMEWHERE = "budget-bound somewhere"
ONE_DATASET = "(one dataset only)"


@dataclass
class Source:
    """One results source: its table (run directories resolved on disk), label and benchmark files."""

    path: Path
    label: str
    df: pd.DataFrame
    bench: list[Path] = field(default_factory=list)
    frozen_claims: Path | None = None
    notes: list[str] = field(default_factory=list)


def load_source(path: str | Path, label: str | None = None, bench: Sequence[str | Path] | None = None) -> Source:
    """A ``results.csv`` or a folder holding one. Its label: ``label``, else the folder's name. Benchmark
    files: ``bench`` when given — an empty list means none (a workflow without a benchmark must not pick
    up an earlier study's files from ``results/bench/``) — else ``<folder>/bench/*.json``. Run
    directories written as ``results/runs/...`` are found under the folder's ``runs/`` (a frozen
    reference)."""
    from onebp.report.collect import load_results

    path = Path(path)
    csv = path / "results.csv" if path.is_dir() else path
    if path.is_dir() and not csv.exists():
        raise UserError(f"{path}: a folder without results.csv (give a results table or a reference folder)")
    df = load_results(csv)
    folder = csv.parent
    if "run_dir" in df:
        dirs = {d: resolve_run_dir(d, folder) for d in df["run_dir"].dropna().astype(str).unique()}
        df = df.assign(run_dir=df["run_dir"].astype(str).map(lambda d: dirs.get(d, d)))
    name = label or (folder.name if folder.name not in ("", ".") else csv.stem)
    files = [Path(b) for b in bench] if bench is not None else sorted(folder.glob("bench/*.json"))
    frozen = folder / "tables" / "claims.csv"
    return Source(csv, name, df, files, frozen if frozen.exists() else None)


def _has_per_user(df: pd.DataFrame) -> bool:
    """Whether every clean run's per-user test values are on disk (the claims' user-level tests)."""
    sel = df[(df["protocol"] == "clean") & (df["split"] == "test")]
    dirs = sel["run_dir"].dropna().astype(str).unique() if "run_dir" in sel else []
    return all((Path(d) / "per_user_test.npz").exists() for d in dirs)


def source_claims(src: Source, metrics: list[str] | None = None, reference: str = "onebp", twin: str = "twobp",
                  alpha: float = 0.05, base: Path | None = None) -> pd.DataFrame:
    """The source's claims frame under ``BUDGET_RULE``: computed from its runs, or — when their per-user
    arrays are not on disk — its frozen ``tables/claims.csv`` with the cap columns recomputed."""
    from onebp.report.efficiency import load_bench

    bench = load_bench(src.bench) if src.bench else None
    if _has_per_user(src.df):
        return C.claims_frame(src.df, bench, metrics, reference, twin, alpha, base=base)
    if src.frozen_claims is None:
        raise UserError(f"{src.path}: its runs' per_user_test.npz are not on disk (needed for the tests over "
                        "users) and no frozen tables/claims.csv lies beside it")
    try:
        frozen = pd.read_csv(src.frozen_claims)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{src.frozen_claims}: not a claims table ({str(exc).strip().splitlines()[0]})") from None
    missing = {"claim", "dataset", "metric", "a", "b", "kind", "status", "verdict"} - set(frozen.columns)
    if missing:
        raise UserError(f"{src.frozen_claims}: not a claims table, no column {', '.join(sorted(missing))}")
    if metrics:
        keep = (frozen["kind"] != "quality") | frozen["metric"].isin(metrics)
        frozen = frozen[keep].reset_index(drop=True)
    src.notes.append(f"{src.label}: statistics (effect, CI, p, raw verdict) from its frozen "
                     f"`{src.frozen_claims.parent.name}/{src.frozen_claims.name}` (the runs' per-user arrays are "
                     "not shipped); cap columns and budget verdicts recomputed from its results.csv and "
                     "runs/*/config.json.")
    if bench is not None and not bench.empty:
        # The computation rows need no per-user arrays: recompute them from the shipped benchmark, so every
        # column is judged by the current SPEED_RULE (a frozen claims.csv may hold an older rule's verdict).
        speed = frozen["kind"] == "speed"
        datasets = list(dict.fromkeys(frozen.loc[speed, "dataset"]))
        fresh = pd.DataFrame(C.speed_rows(bench, src.df, datasets, reference, twin, alpha))
        if not fresh.empty:
            order = list(dict.fromkeys(frozen["dataset"]))
            frozen = C.in_claim_order(pd.concat([frozen[~speed], fresh], ignore_index=True), order)
            src.notes.append(f"{src.label}: computation rows (2a, 2b) recomputed from its shipped benchmark "
                             f"({', '.join(p.name for p in src.bench)}) under the current rule; its own REPORT.md, "
                             "written when it was frozen, may show an older rule's verdict.")
    if base is not None and "runs" in frozen:  # its links are relative to its own folder
        rel = os.path.relpath(src.path.parent, base)
        if rel != ".":
            frozen["runs"] = frozen["runs"].fillna("").astype(str).str.replace("](", f"]({rel}/", regex=False)
    return C.attach_cap(frozen, src.df)


def source_cap(src: Source, dataset: str, reference: str = "onebp") -> float:
    """Median epoch cap of the reference method's main clean runs on ``dataset`` (NaN if none)."""
    caps = cap_frame(src.df)
    if caps.empty:
        return math.nan
    tags = caps["setting"].astype(str).map(setting_tag)
    g = caps[(caps["dataset"] == dataset) & (caps["method"] == reference) & (tags == MAIN)
             & (caps["protocol"] == "clean")]
    return float(g["epochs_cap"].median()) if not g.empty else math.nan


def _base(verdict: str) -> str:
    """``budget-bound (…)`` → budget-bound; ``supported (cap: unknown)`` → supported."""
    return str(verdict).split(" (")[0]


def overall(cells: Sequence[tuple[str, str]], raw: Sequence[str] | None = None) -> str:
    """The overall column from (dataset, verdict) cells, one per column of the matrix; ``raw``: the
    columns' statistical verdicts, summarised the same way in parentheses when some column is
    budget-bound (so a verdict that flips with the budget is not hidden behind "budget-bound")."""
    datasets = {d for d, _ in cells}
    run = [(d, v) for d, v in cells if v != "not run"]
    if not run:
        return "not run"
    base = [_base(v) for _, v in run]
    if C.BUDGET_BOUND in base:
        out = BUDGET_SOMEWHERE
        if raw is not None:
            raw_cells = [(d, r) for (d, v), r in zip(cells, raw, strict=True) if v != "not run"]
            out += f" (raw: {overall(raw_cells).replace(' ' + ONE_DATASET, '')})"
    elif set(base) == {C.SUPPORTED}:
        out = HOLDS
    elif set(base) == {C.NOT_SUPPORTED}:
        out = FAILS
    elif set(base) == {C.INCONCLUSIVE}:
        out = INCONCLUSIVE_ALL
    else:
        per = {}
        for (d, _), b in zip(run, base, strict=True):
            per.setdefault(d, set()).add(b)
        within = any(len(s) > 1 for s in per.values())
        across = len({frozenset(s) for s in per.values()}) > 1
        out = ("depends on the dataset and the budget" if within and across
               else "depends on the budget" if within else "depends on the dataset")
    if any(C.CAP_UNKNOWN in v for _, v in run):
        out += " (cap: unknown somewhere)"
    if len(run) < len(cells):
        out += f" (not run in {len(cells) - len(run)})"
    if len(datasets) == 1:
        out += f" {ONE_DATASET}"
    return out


def _effect(r: dict) -> str:
    if r.get("status") != "ok":
        return ""
    if r.get("kind") == "quality":
        d = r.get("delta", math.nan)
        if not np.isfinite(d):
            return ""
        return f"Δ {d:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]"
    lo, hi = r.get("ratio_low", math.nan), r.get("ratio_high", math.nan)
    if np.isfinite(lo) and np.isfinite(hi):
        return f"× {r['ratio']:.3f} [{lo:.3f}, {hi:.3f}]"
    a, b = r.get("mean_a", math.nan), r.get("mean_b", math.nan)
    return f"× {a / b:.3f}" if np.isfinite(a) and np.isfinite(b) and b else ""


def column_label(dataset: str, cap: float, label: str) -> str:
    cap_s = f"cap {cap:.0f}" if np.isfinite(cap) and cap > 0 else "cap ?"
    return f"{dataset}, {cap_s}" + ("" if label == dataset else f" ({label})")


def matrix_frame(frames: Sequence[tuple[str, pd.DataFrame, float | dict]]) -> tuple[pd.DataFrame, list[str]]:
    """(numeric matrix, column labels) from (source label, claims frame, epoch cap per dataset)
    triples: one row per claim × metric, per column ``<column>`` the verdict and ``<column> effect``,
    ``<column> raw``; and ``overall``."""
    columns: list[tuple[str, str, str]] = []  # (column label, source label, dataset)
    for label, frame, caps in frames:
        for ds in dict.fromkeys(frame["dataset"]) if not frame.empty else []:
            cap = caps.get(ds, math.nan) if isinstance(caps, dict) else caps
            columns.append((column_label(ds, cap, label), label, ds))
    keys: list[tuple[str, str]] = []
    texts: dict[str, str] = {}
    for _, frame, _ in frames:
        for r in frame.to_dict("records"):
            key = (str(r["claim"]), str(r["metric"]))
            if key not in keys:
                keys.append(key)
            texts.setdefault(key[0], str(r["text"]))
    order = {c: i for i, c in enumerate(["1a", "1b", "2a", "2b", "3a", "3b", "3c"])}
    keys.sort(key=lambda k: (order.get(k[0], 99), k[0], 0 if k[1].startswith("ndcg") else 1, k[1]))
    by = {label: frame for label, frame, _ in frames}
    rows = []
    for claim, metric in keys:
        row: dict = {"claim": claim, "text": texts[claim], "metric": metric}
        cells = []
        for col, label, ds in columns:
            f = by[label]
            hit = f[(f["claim"].astype(str) == claim) & (f["metric"].astype(str) == metric) & (f["dataset"] == ds)]
            if hit.empty:
                row[col], row[f"{col} effect"], row[f"{col} raw"], row[f"{col} cap"] = "not run", "", "", ""
            else:
                r = hit.iloc[0].to_dict()
                row[col] = str(r["verdict"])
                row[f"{col} effect"] = _effect(r)
                row[f"{col} raw"] = str(r.get("raw_verdict", r["verdict"]))
                ca, cb = (r.get("cap_a") or ""), (r.get("cap_b") or "")
                row[f"{col} cap"] = f"cap-bound runs: A {ca}, B {cb}" if ca or cb else ""
            cells.append((ds, row[col]))
        row["overall"] = overall(cells, [row[f"{c} raw"] or row[c] for c, _, _ in columns])
        rows.append(row)
    return pd.DataFrame(rows), [c for c, _, _ in columns]


def render_matrix(matrix: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """For people: claim, metric, per column "verdict; effect (raw: …)", overall."""
    out = pd.DataFrame({"claim": [f"{c}: {t}" for c, t in zip(matrix["claim"], matrix["text"], strict=True)],
                        "metric": matrix["metric"]})
    for col in columns:
        cells = []
        for v, e, raw, cap in zip(matrix[col], matrix[f"{col} effect"], matrix[f"{col} raw"], matrix[f"{col} cap"],
                                  strict=True):
            cell = f"**{v}**" if v != "not run" else v
            if e:
                cell += f"; {e}"
            if raw and _base(v) == C.BUDGET_BOUND:
                cell += f" (raw: {raw})"
            if cap and (_base(v) == C.BUDGET_BOUND or C.CAP_UNKNOWN in v):
                cell += f"; {cap}"
            cells.append(cell)
        out[col] = cells
    out["overall"] = matrix["overall"]
    return out


HEADLINE_START, HEADLINE_END = "<!-- headline-matrix -->", "<!-- /headline-matrix -->"


def _short_effect(effect: str) -> str:
    """``Δ +0.0302 [+0.0252, +0.0351]`` → ``+0.030``; ``× 0.729 [0.593, 0.897]`` → ``×0.729``."""
    if effect.startswith("Δ "):
        return f"{float(effect.split()[1]):+.3f}"
    return effect.split(" [")[0].replace(" ", "")


def headline_table(matrix: pd.DataFrame, columns: list[str]) -> str:
    """The matrix at a glance (the README's headline): one row per claim on its first metric (NDCG@K
    for quality claims), per column the verdict and the effect in short, and the overall verdict."""
    from tabulate import tabulate

    rows = []
    for _, r in matrix.drop_duplicates("claim", keep="first").iterrows():
        row = {"claim": f"{r['claim']}: {r['text']}", "metric": r["metric"]}
        for col in columns:
            effect = _short_effect(r[f"{col} effect"]) if r[f"{col} effect"] else ""
            row[col] = r[col] + (f" ({effect})" if effect else "")
        row["overall"] = r["overall"]
        rows.append(row)
    return tabulate(pd.DataFrame(rows), headers="keys", tablefmt="github", showindex=False, disable_numparse=True)


def headline_into(text: str, matrix_md: str, where: str) -> str:
    """``text`` (a README) with the block between its headline markers replaced by the matrix's "At a
    glance" block; UserError naming ``where`` when the markers are missing."""
    start = text.find("<!-- headline-matrix")
    end = text.find(HEADLINE_END, start)
    if start < 0 or end < 0:
        raise UserError(f"{where}: no '<!-- headline-matrix' … '{HEADLINE_END}' markers to fill")
    block = matrix_md[matrix_md.index(HEADLINE_START) + len(HEADLINE_START):matrix_md.index(HEADLINE_END)]
    line_end = text.index("\n", start)
    return text[:line_end + 1] + block.strip("\n") + "\n" + text[end:]


MATRIX_RULE = (
    "Each cell: the verdict under the report's rules (quality: bootstrap CI over users and Holm-corrected "
    "Wilcoxon p; computation: paired t-test on log time ratios over the benchmark's interleaved repeats; **budget-bound** when either side is cap-bound "
    "in most runs, its raw statistical verdict in parentheses) and the effect (Δ = A − B with its 95 % CI, "
    "or the paired time ratio A / B, geometric mean with its 95 % CI). Overall: *holds everywhere* / *fails everywhere* / *inconclusive "
    "everywhere* (one verdict in every column), *budget-bound somewhere* (a budget did not decide it in "
    "some column; the raw verdicts summarised the same way in parentheses), *depends on the dataset* / "
    "*on the budget* (verdicts differ between datasets / only between budgets of one dataset); *(one "
    "dataset only)* when every column is one dataset."
)


def matrix_markdown(sources: Sequence[Source], frames: Sequence[pd.DataFrame], reference: str = "onebp") -> str:
    """The matrix section (Markdown): the table, what each column is, the rules, the sources' notes."""
    from tabulate import tabulate

    from onebp.report.epoch_cap import CAP_RULE

    triples = []
    for src, frame in zip(sources, frames, strict=True):
        ds = list(dict.fromkeys(frame["dataset"])) if not frame.empty else []
        triples.append((src.label, frame, {d: source_cap(src, d, reference) for d in ds}))
    matrix, columns = matrix_frame(triples)
    datasets = {c.split(",")[0] for c in columns}
    parts = ["## At a glance", "", "One row per claim on its first metric: verdict (effect: Δ = A − B, or the "
             "time ratio A / B), per dataset and budget; the full matrix with CIs and cap counts follows.", "",
             HEADLINE_START, headline_table(matrix, columns), HEADLINE_END, "",
             "## Robustness: each claim on every dataset and budget", ""]
    if len(datasets) == 1:
        parts += [f"Every column is the same dataset ({next(iter(datasets))}) — at different budgets or "
                  "settings, not a second dataset: agreement here says the verdict survives the budget, "
                  "not that it generalises.", ""]
    table = tabulate(render_matrix(matrix, columns), headers="keys", tablefmt="github", showindex=False,
                     disable_numparse=True)
    parts += [table, "", MATRIX_RULE, "", C.BUDGET_RULE, "", CAP_RULE, "",
              "Columns: " + "; ".join(f"*{c}* — `{s.path}`" for c, s in zip(
                  columns, [s for s, f in zip(sources, frames, strict=True)
                            for _ in (dict.fromkeys(f["dataset"]) if not f.empty else [])], strict=True)) + ".",
              ""]
    for src in sources:
        caps = cap_frame(src.df)
        caps = caps[caps["protocol"] == "clean"]
        trained = caps[caps["epochs_cap"].astype(float) > 0]
        missing = [d for d in trained["run_dir"].astype(str) if not (Path(d) / "curve.csv").exists()]
        if missing:
            unknown = int(sum(b is None for b in trained["cap_bound"]))
            src.notes.append(f"{src.label}: {len(missing)} of {len(trained)} trained runs (protocol clean) have no "
                             "curve.csv on disk, so the trend test (b) could not be applied to them: each was judged "
                             "by early stopping and rule (a) alone, and the "
                             f"{unknown} that neither settled stay \"cap: unknown\" (never counted as free).")
    notes = [n for s in sources for n in s.notes]
    if notes:
        parts += ["Notes:", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(parts)
