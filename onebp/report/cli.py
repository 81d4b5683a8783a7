"""``onebp report collect|tables|figures``: run directories → results.csv → tables and figures."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

from onebp.errors import UserError


def _csv_list(s: str) -> list[str]:
    return [x for x in s.split(",") if x]


# -- up-front checks of the options: refused (UserError naming the flag) before anything is read or written


def _protocols() -> tuple[str, ...]:
    """The protocols a run can have (TrainConfig.protocol's values)."""
    import typing

    from onebp.config import TrainConfig

    return typing.get_args(typing.get_type_hints(TrainConfig)["protocol"])


def _check_alpha(alpha: float) -> None:
    # NaN compares false with everything: without the isfinite test it would pass as "in range"
    if not (math.isfinite(alpha) and 0 < alpha < 1):
        raise UserError(f"--alpha must lie in (0, 1), got {alpha}")


def _check_protocol(protocol: str) -> None:
    known = _protocols()
    if protocol not in known:
        raise UserError(f"--protocol: unknown protocol {protocol!r} (known: {', '.join(known)})")


def _check_metric_names(flag: str, names: list[str]) -> None:
    from onebp.config import METRIC_NAMES

    unknown = [n for n in names if n not in METRIC_NAMES]
    if unknown or not names:
        raise UserError(f"{flag}: unknown metric {', '.join(map(repr, unknown)) or '(none given)'} "
                        f"(known: {', '.join(METRIC_NAMES)})")


def _check_reference(reference: str, df, where: str, methods: list[str] | None = None) -> None:
    """``--reference`` must have rows in the results (among ``methods`` when given): without them the
    claims compare nothing and the tables mark no difference, with no word of why."""
    present = set(df["method"].astype(str)) if "method" in df else set()
    if methods:
        present &= set(methods)
    if reference not in present:
        raise UserError(f"--reference {reference!r}: no rows of that method in {where} "
                        f"(methods there: {', '.join(sorted(present)) or 'none'})")


def _check_ks(ks: list[int]) -> None:
    bad = [k for k in ks if k < 1]
    if bad or not ks:
        raise UserError(f"--ks: cut-offs must be positive integers, got {', '.join(map(str, bad)) or '(none)'}")


def _check_metric_at_k(flag: str, keys: list[str]) -> None:
    """Each key is <metric>@<k>: a known metric and a positive cut-off (e.g. ndcg@20)."""
    from onebp.config import METRIC_NAMES

    for key in keys or [""]:
        name, at, k = key.partition("@")
        if name not in METRIC_NAMES or not at or not re.fullmatch(r"[1-9][0-9]*", k):
            raise UserError(f"{flag}: {key!r} is not <metric>@<k> with metric one of {', '.join(METRIC_NAMES)} "
                            "and k a positive integer (e.g. ndcg@20)")


#: `onebp report compare --help` (onebp/report/compare.py has the reasoning and measured rates;
#: tests/report/test_compare.py keeps the defaults here equal to its constants)
COMPARE_RULE = """\
Per cell (dataset, method, setting, protocol, split, metric@k) over seeds, matched seed by seed: a
reference seed the rerun lacks makes the cell *missing*; a (cell, seed) with two rows in either file,
or a seed that is not a whole number, is refused; a rerun's cut last row is not read and fails the
check. Only the reference's spread sets the allowance: sigma = the reference cell's std over seeds,
at least the pooled spread of the reference's cells of that dataset/protocol/split/metric@k (root
mean square of their stds > 0, each capped at 3x their lower median, so one collapsed seed cannot
widen every method's allowance; the pooled value alone for a one-seed cell). A cell disagrees when
  mean check: |mean_rerun - mean_ref| > K_SIGMA * sigma * sqrt(1/n_rerun + 1/n_ref) + TOL
  seed check: some rerun seed x has |x - mean_ref| > K_SEED * sigma * sqrt(1 + 1/n_ref) + FLOOR
  NaN: any value of the cell is NaN (either side);  missing: the rerun lacks the cell or a seed.
Exit 1 when any reference cell disagrees, the rerun's last row was cut, or none was compared;
exit 2 for an unknown --splits name, a split the reference lacks, or an unreadable table.
Measured (benchmarks/compare_false_alarms.py, every 3 + 2 split of the ml-100k-200epochs
reference's 5 seeds, values compared without seed matching): no false alarm in any of the 10
splits (0 of 11700 cells); one seed moved by +0.03 caught in 93.0 % of the cells whose seeds
spread <= 0.003 (71.0 % of all cells; noisy ones such as MRR@5 spread about 0.01)."""


def register(sub: argparse._SubParsersAction) -> None:
    # Heavy imports (pandas, matplotlib) happen inside the handlers so `onebp --help` stays fast.
    rep = sub.add_parser("report", help="collect run directories into results.csv; tables; figures")
    rsub = rep.add_subparsers(dest="report_command", required=True)

    p = rsub.add_parser("collect", help="long results table from run directories")
    p.add_argument("runs", nargs="*", help="run directories, or their metrics.json files (config.json is read "
                                           "next to each)")
    p.add_argument("--root", help="also collect every finished run under this directory")
    p.add_argument("--out", required=True, help="results.csv to write")
    p.add_argument("--runs-out", help="runs.csv (one row per run, resolved config) to write")
    p.set_defaults(func=_collect)

    p = rsub.add_parser("tables", help="main and efficiency tables (md, tex, html, csv)")
    p.add_argument("--results", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--protocol", default="clean", help="protocol of the main and efficiency tables")
    p.add_argument("--paper", action="store_true", help="also write paper.* (protocol paper, best on test)")
    p.add_argument("--metrics", type=_csv_list, default=["recall", "ndcg"])
    p.add_argument("--ks", type=lambda s: [int(x) for x in _csv_list(s)], default=[5, 10, 20])
    p.add_argument("--reference", default="onebp", help="method the significance tests compare against")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--methods", type=_csv_list, default=None, help="row order")
    p.add_argument("--datasets", type=_csv_list, default=None, help="row order")
    p.add_argument("--bench", nargs="*", default=[],
                   help="benchmark files (bench-suite): the efficiency table is made from them, not the runs")
    p.add_argument("--protocol-gap", action="store_true", help="also write protocol_gap.* (needs both protocols)")
    p.add_argument("--sweep", action="append", default=[],
                   help="swept parameter: write sweep_<param>.* (OneBP vs TwoBP per point; needs --runs)")
    p.add_argument("--runs", help="runs.csv written by collect (for --sweep)")
    p.add_argument("--metric", default="ndcg@20", help="metric of the sweep tables")
    p.set_defaults(func=_tables)

    p = rsub.add_parser("figures", help="curves, time-vs-quality, epoch time, memory, sweeps (png, pdf)")
    p.add_argument("--results", required=True)
    p.add_argument("--runs", required=True, help="runs.csv written by collect")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--protocol", default="clean")
    p.add_argument("--metric", default="ndcg@20")
    p.add_argument("--sweep", action="append", default=[], help="swept parameter (repeatable)")
    p.add_argument("--bench", nargs="*", default=[], help="benchmark files: epoch_time and memory from them")
    p.add_argument("--protocol-gap", action="store_true", help="also the protocol_gap figure")
    p.set_defaults(func=_figures)

    p = rsub.add_parser("tuning", help="tuning table: chosen settings and validation values (md, tex, html, csv)")
    p.add_argument("best", nargs="*", help="best.json files of `onebp tune summarize` (trials.csv read next to each)")
    p.add_argument("--root", help="also every <dataset>/<method>/best.json under this tuning directory")
    p.add_argument("--out", required=True, help="output prefix, e.g. results/tables/tuning")
    p.add_argument("--methods", type=_csv_list, default=None, help="row order")
    p.add_argument("--datasets", type=_csv_list, default=None, help="row order")
    p.set_defaults(func=_tuning)

    p = rsub.add_parser("claims", help="the reproduction report (REPORT.md): claims, verdicts, parity, anchors; "
                                       "with several --results, the robustness matrix")
    p.add_argument("--results", action="append", required=True,
                   help="a results.csv or a folder holding one (e.g. a reference); repeatable: several "
                        "studies (datasets, budgets) make the robustness matrix")
    p.add_argument("--label", action="append", default=[],
                   help="a label per --results, in the same order (default: the folder's name)")
    p.add_argument("--bench", nargs="*", default=None,
                   help="benchmark files (onebp bench-suite --out X: X.json); given with no file: no benchmark "
                        "(2a/2b not run), never another study's files; absent: each --results folder's bench/*.json")
    p.add_argument("--out", help="REPORT.md to write")
    p.add_argument("--matrix", help="also (or only) the robustness matrix as its own page, e.g. ROBUSTNESS.md")
    p.add_argument("--headline-into", metavar="README",
                   help="with --matrix: also copy its 'At a glance' block between README's headline-matrix markers")
    p.add_argument("--html", help="also the claims table as HTML (for the Snakemake report)")
    p.add_argument("--csv", help="also the claims table as numbers (CSV)")
    p.add_argument("--metrics", type=_csv_list, default=["recall@20", "ndcg@20"], help="e.g. recall@20,ndcg@20")
    p.add_argument("--reference", default="onebp")
    p.add_argument("--twin", default="twobp")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--figures", nargs="*", default=[], help="figure files to show (e.g. the ablation sweep)")
    p.set_defaults(func=_claims)

    p = rsub.add_parser(
        "compare", help="a rerun's results.csv against a reference results.csv; exit 1 when any cell "
                        "differs beyond the reference's seed spread, has a NaN, or nothing was compared",
        description=COMPARE_RULE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rerun", help="results.csv of the rerun")
    p.add_argument("reference", help="reference results.csv (e.g. results/reference/<dataset>/results.csv)")
    p.add_argument("--splits", type=_csv_list, default=None,
                   help="metric splits to compare, each present in the reference: test, best_on_test, valid "
                        "(default: test,best_on_test, those the reference has)")
    p.add_argument("--k-sigma", type=float, default=5.0, help="mean check: K (default 5)")
    p.add_argument("--tol", type=float, default=0.005, help="mean check: TOL added to the allowance (default 0.005)")
    p.add_argument("--k-seed", type=float, default=5.0, help="seed check: K_SEED (default 5)")
    p.add_argument("--floor", type=float, default=0.005, help="seed check: FLOOR added to the allowance (default 0.005)")
    p.set_defaults(func=_compare)

    p = rsub.add_parser("reference", help="freeze a finished workflow directory as shipped reference results")
    p.add_argument("--workdir", default=".", help="the workflow's directory (holds results/)")
    p.add_argument("--out", required=True,
                   help="e.g. results/reference/ml-100k; built beside it and swapped in whole, so an earlier "
                        "freeze there is replaced (never mixed); a non-empty folder this command did not write "
                        "is refused")
    p.add_argument("--command", required=True, help="the command that made the results (for the README)")
    p.add_argument("--wall", required=True, help="its wall time, e.g. '1 min 40 s' (for the README)")
    p.add_argument("--note", default="", help="an extra paragraph for the README")
    p.add_argument("--no-figures", action="store_true")
    p.set_defaults(func=_reference)

    p = rsub.add_parser("summary", help="one Markdown page: the tables, then the figures")
    p.add_argument("--tables", nargs="*", default=[], help="Markdown tables to include")
    p.add_argument("--figures", nargs="*", default=[], help="figure files to link (relative to --out)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_summary)


def _collect(args: argparse.Namespace) -> int:
    from onebp.report.collect import collect, find_runs, run_dir_of

    runs = [run_dir_of(r) for r in args.runs] + (find_runs(args.root) if args.root else [])
    runs = list(dict.fromkeys(runs))
    df, per_run = collect(runs)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    if args.runs_out:
        per_run.to_csv(args.runs_out, index=False)
    print(json.dumps({"runs": len(runs), "rows": len(df), "out": str(out)}))
    return 0


def _tables(args: argparse.Namespace) -> int:
    from onebp.report.collect import load_results
    from onebp.report.layout import load_runs
    from onebp.report.tables import (
        Table,
        comparison_table,
        efficiency_table,
        main_table,
        write_plain,
        write_table,
    )

    _check_protocol(args.protocol)
    _check_metric_names("--metrics", args.metrics)
    _check_ks(args.ks)
    _check_alpha(args.alpha)
    if args.sweep:
        _check_metric_at_k("--metric", [args.metric])
        if not args.runs:
            raise UserError("--sweep needs --runs (runs.csv from `onebp report collect`)")
    # Every input is read before the first table is written: a bad one leaves no partial set of tables.
    df = load_results(args.results)
    _check_reference(args.reference, df, args.results, args.methods)
    runs = load_runs(args.runs) if args.sweep else None
    bench = None
    if args.bench:
        from onebp.report.efficiency import load_bench

        bench = load_bench(args.bench)
    out = Path(args.out_dir)
    kw = dict(metrics=tuple(args.metrics), ks=tuple(args.ks), reference=args.reference, alpha=args.alpha,
              methods=args.methods, datasets=args.datasets)
    split = "test" if args.protocol == "clean" else "best_on_test"
    try:  # main_table's ValueError: the results hold no row of the asked protocol/metrics/cut-offs
        main = main_table(df, args.protocol, split, **kw)
        paper = main_table(df, "paper", "best_on_test", **kw) if args.paper else None
    except ValueError as exc:
        raise UserError(f"{args.results}: {exc} (see --protocol, --metrics, --ks)") from None
    if bench is not None:
        from onebp.report.efficiency import bench_table

        eff = bench_table(bench, df, methods=args.methods, datasets=args.datasets)
    else:
        try:  # efficiency_table's ValueError: no timing rows of --protocol (checked before any write)
            eff = efficiency_table(df, args.protocol, methods=args.methods, datasets=args.datasets)
        except ValueError as exc:
            raise UserError(f"{args.results}: {exc} (see --protocol)") from None
    written = write_table(main, out / "main", "tab:main")
    written += write_plain(comparison_table(main, args.reference, args.alpha), out / "comparisons", "tab:comparisons")
    if paper is not None:
        written += write_table(paper, out / "paper", "tab:paper")
    written += write_plain(eff, out / "efficiency", "tab:efficiency")
    if args.protocol_gap:
        from onebp.report.protocol_gap import protocol_gap_table

        gap = protocol_gap_table(df, tuple(args.metrics), max(args.ks), methods=args.methods,
                                 datasets=args.datasets)
        written += write_plain(gap, out / "protocol_gap", "tab:protocol-gap")
    if args.sweep:
        import pandas as pd

        from onebp.report.sweep_table import sweep_comparison_table

        for param in args.sweep:
            try:
                t = sweep_comparison_table(df, runs, param, args.protocol, args.metric, alpha=args.alpha)
            except ValueError as exc:  # nothing to compare: a table that says so (the DAG expects the file)
                t = Table(pd.DataFrame({"note": [str(exc)]}), pd.DataFrame({"note": [str(exc)]}),
                          f"Sweep of {param}: not available.")
            written += write_plain(t, out / f"sweep_{param}", f"tab:sweep-{param}")
    print("\n".join(map(str, written)), file=sys.stderr)
    return 0


def _figures(args: argparse.Namespace) -> int:
    from onebp.report.collect import load_results
    from onebp.report.figures import all_figures
    from onebp.report.layout import load_runs

    _check_protocol(args.protocol)
    _check_metric_at_k("--metric", [args.metric])
    df = load_results(args.results)
    runs = load_runs(args.runs)
    bench = None
    if args.bench:
        from onebp.report.efficiency import load_bench

        bench = load_bench(args.bench)
    written = all_figures(df, runs, args.out_dir, args.protocol, args.metric, args.sweep, bench=bench,
                          protocol_gap=args.protocol_gap)
    print("\n".join(map(str, written)), file=sys.stderr)
    return 0


def _tuning(args: argparse.Namespace) -> int:
    from onebp.report.tables import write_plain
    from onebp.report.tuning_table import load_best, load_tuning, tuning_table

    if not args.best and not args.root:
        raise UserError("report tuning: give best.json files or --root DIR")
    records = [load_best(p) for p in dict.fromkeys(Path(b) for b in args.best)]
    records += load_tuning(args.root) if args.root else []
    table = tuning_table(records, args.methods, args.datasets)
    written = write_plain(table, args.out, "tab:tuning")
    print("\n".join(map(str, written)), file=sys.stderr)
    return 0


def _claims_command(args: argparse.Namespace) -> str:
    """The command line that makes these outputs (written at the top of a matrix page)."""
    import shlex

    parts = ["onebp", "report", "claims"]
    for i, r in enumerate(args.results):
        parts += ["--results", r] + (["--label", args.label[i]] if args.label else [])
    if args.metrics != ["recall@20", "ndcg@20"]:
        parts += ["--metrics", ",".join(args.metrics)]
    for opt in ("reference", "twin", "alpha"):
        if getattr(args, opt) != {"reference": "onebp", "twin": "twobp", "alpha": 0.05}[opt]:
            parts += [f"--{opt}", str(getattr(args, opt))]
    for opt in ("out", "matrix", "html", "csv"):
        if getattr(args, opt):
            parts += [f"--{opt}", getattr(args, opt)]
    return shlex.join(parts)


def _claims(args: argparse.Namespace) -> int:
    import pandas as pd

    from onebp.atomic import atomic_write
    from onebp.report import claims as C
    from onebp.report.efficiency import load_bench
    from onebp.report.reproduction import build_multi_report, write_report
    from onebp.report.robustness import (
        HEADLINE_END,
        HEADLINE_START,
        headline_into,
        load_source,
        matrix_markdown,
        source_claims,
    )

    if not args.out and not args.matrix:
        raise UserError("report claims: give --out REPORT.md and/or --matrix ROBUSTNESS.md")
    readme = None
    if args.headline_into:  # read and checked before anything is written
        if not args.matrix:
            raise UserError("report claims: --headline-into needs --matrix (the block comes from the matrix page)")
        try:
            readme = Path(args.headline_into).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"--headline-into {args.headline_into}: cannot read ({exc.__class__.__name__})") from None
        headline_into(readme, f"{HEADLINE_START}\n{HEADLINE_END}", args.headline_into)
    _check_alpha(args.alpha)
    _check_metric_at_k("--metrics", args.metrics)
    if args.label and len(args.label) != len(args.results):
        raise UserError(f"report claims: {len(args.label)} --label for {len(args.results)} --results "
                        "(one label per results source, in order)")
    single = len(args.results) == 1
    if args.bench is not None and not single:
        raise UserError(f"report claims: --bench with {len(args.results)} --results (each folder's bench/*.json "
                        "is read; pass --bench with one --results only)")
    sources = [load_source(r, args.label[i] if args.label else None, args.bench)
               for i, r in enumerate(args.results)]
    for s in sources:
        _check_reference(args.reference, s.df, str(s.path))
    labels = [s.label for s in sources]
    if len(set(labels)) < len(labels):
        raise UserError(f"report claims: two sources share the label {labels!r}; name them with --label")
    base = Path(args.out or args.matrix).parent
    kw = dict(metrics=args.metrics, reference=args.reference, twin=args.twin, alpha=args.alpha)
    frames = [source_claims(s, base=base, **kw) for s in sources]
    command = _claims_command(args)
    matrix = None
    if not single or (not frames[0].empty and frames[0]["dataset"].nunique() > 1):
        matrix = matrix_markdown(sources, frames, args.reference)
    written = []
    if args.out and single:
        s = sources[0]
        bench = load_bench(s.bench) if s.bench else None
        written += write_report(s.df, bench, args.out, args.html, args.csv, alpha=args.alpha, metrics=args.metrics,
                                reference=args.reference, twin=args.twin, figures=args.figures,
                                results_name=Path(s.path).name if Path(args.results[0]).is_file() else str(s.path),
                                frame=frames[0], matrix_md=matrix)
    elif args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, build_multi_report(sources, frames, matrix, command))
        written.append(out)
        both = pd.concat([f.assign(source=s.label) for s, f in zip(sources, frames, strict=True)], ignore_index=True)
        if args.csv:
            Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
            atomic_write(args.csv, both.to_csv(index=False))
            written.append(Path(args.csv))
        if args.html:
            Path(args.html).parent.mkdir(parents=True, exist_ok=True)
            atomic_write(args.html, C.render_claims(both).to_html(index=False, escape=True))
            written.append(Path(args.html))
    if args.matrix:
        page = Path(args.matrix)
        text = "\n".join(["# Robustness of the claims", "", "Generated by:", "", "```", command, "```", "",
                           "Nothing here is written by hand.", "", matrix or _one_column_note(frames[0])])
        page.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(page, text)
        written.append(page)
        if readme is not None:
            atomic_write(args.headline_into, headline_into(readme, text, args.headline_into))
            written.append(Path(args.headline_into))
    print("\n".join(map(str, written)), file=sys.stderr)
    return 0


def _one_column_note(frame) -> str:
    ds = ", ".join(dict.fromkeys(frame["dataset"])) if not frame.empty else "none"
    return (f"One results source with one dataset ({ds}): no matrix to draw (give several --results, e.g. "
            "one per dataset or budget).\n")


def _compare(args: argparse.Namespace) -> int:
    from onebp.report.compare import run

    for path in (args.rerun, args.reference):
        if not Path(path).exists():
            raise UserError(f"{path}: no such results table")
    splits = None if args.splits is None else tuple(args.splits)
    return run(args.rerun, args.reference, splits, args.k_sigma, args.tol, args.k_seed, args.floor)


def _reference(args: argparse.Namespace) -> int:
    from onebp.report.reference import freeze

    written = freeze(args.workdir, args.out, args.command, args.wall, args.note, figures=not args.no_figures)
    print(f"{len(written)} files under {args.out}", file=sys.stderr)
    return 0


def _summary(args: argparse.Namespace) -> int:
    import os

    from onebp.atomic import atomic_write

    out = Path(args.out)
    parts = ["# OneBP-Bench results", "",
             "Generated from `results/results.csv` (every row names its run directory).", ""]
    for t in args.tables:
        parts += [f"## {Path(t).stem}", "", _read_table_text(Path(t)), ""]
    if args.figures:
        parts += ["## Figures", ""]
        for f in args.figures:
            rel = os.path.relpath(f, out.parent)
            parts += [f"### {Path(f).stem}", "", f"![{Path(f).stem}]({rel})", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, "\n".join(parts))
    return 0


def _read_table_text(path: Path) -> str:
    """A --tables file's text; UserError naming it when it is missing, a directory or not UTF-8."""
    if path.is_dir():
        raise UserError(f"--tables {path}: a directory, not a Markdown table")
    try:
        return path.read_text(encoding="utf-8").rstrip()
    except FileNotFoundError:
        raise UserError(f"--tables {path}: no such file") from None
    except UnicodeDecodeError:
        raise UserError(f"--tables {path}: not UTF-8 text (not a Markdown table)") from None
    except OSError as exc:
        raise UserError(f"--tables {path}: cannot be read ({exc.strerror})") from None
