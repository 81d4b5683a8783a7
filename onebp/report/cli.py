"""``onebp report collect|tables|figures``: run directories → results.csv → tables and figures."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _csv_list(s: str) -> list[str]:
    return [x for x in s.split(",") if x]


def register(sub: argparse._SubParsersAction) -> None:
    # Heavy imports (pandas, matplotlib) happen inside the handlers so `onebp --help` stays fast.
    rep = sub.add_parser("report", help="collect run directories into results.csv; tables; figures")
    rsub = rep.add_subparsers(dest="report_command", required=True)

    p = rsub.add_parser("collect", help="long results table from run directories")
    p.add_argument("runs", nargs="*", help="run directories (each with metrics.json)")
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
    p.set_defaults(func=_tables)

    p = rsub.add_parser("figures", help="curves, time-vs-quality, epoch time, memory, sweeps (png, pdf)")
    p.add_argument("--results", required=True)
    p.add_argument("--runs", required=True, help="runs.csv written by collect")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--protocol", default="clean")
    p.add_argument("--metric", default="ndcg@20")
    p.add_argument("--sweep", action="append", default=[], help="swept parameter (repeatable)")
    p.set_defaults(func=_figures)

    p = rsub.add_parser("tuning", help="tuning table: chosen settings and validation values (md, tex, html, csv)")
    p.add_argument("--root", required=True, help="tuning directory (<dataset>/<method>/best.json)")
    p.add_argument("--out", required=True, help="output prefix, e.g. results/tables/tuning")
    p.add_argument("--methods", type=_csv_list, default=None, help="row order")
    p.add_argument("--datasets", type=_csv_list, default=None, help="row order")
    p.set_defaults(func=_tuning)

    p = rsub.add_parser("summary", help="one Markdown page: the tables, then the figures")
    p.add_argument("--tables", nargs="*", default=[], help="Markdown tables to include")
    p.add_argument("--figures", nargs="*", default=[], help="figure files to link (relative to --out)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_summary)


def _collect(args: argparse.Namespace) -> int:
    from onebp.report.collect import collect, find_runs

    runs = [Path(r) for r in args.runs] + (find_runs(args.root) if args.root else [])
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
    from onebp.report.tables import efficiency_table, main_table, write_plain, write_table

    df = load_results(args.results)
    out = Path(args.out_dir)
    kw = dict(metrics=tuple(args.metrics), ks=tuple(args.ks), reference=args.reference, alpha=args.alpha,
              methods=args.methods, datasets=args.datasets)
    split = "test" if args.protocol == "clean" else "best_on_test"
    written = write_table(main_table(df, args.protocol, split, **kw), out / "main", "tab:main")
    if args.paper:
        written += write_table(main_table(df, "paper", "best_on_test", **kw), out / "paper", "tab:paper")
    eff = efficiency_table(df, args.protocol, methods=args.methods, datasets=args.datasets)
    written += write_plain(eff, out / "efficiency", "tab:efficiency")
    print("\n".join(map(str, written)), file=sys.stderr)
    return 0


def _figures(args: argparse.Namespace) -> int:
    import pandas as pd

    from onebp.report.collect import load_results
    from onebp.report.figures import all_figures

    df = load_results(args.results)
    runs = pd.read_csv(args.runs, dtype={"setting": str})
    written = all_figures(df, runs, args.out_dir, args.protocol, args.metric, args.sweep)
    print("\n".join(map(str, written)), file=sys.stderr)
    return 0


def _tuning(args: argparse.Namespace) -> int:
    from onebp.report.tables import write_plain
    from onebp.report.tuning_table import load_tuning, tuning_table

    table = tuning_table(load_tuning(args.root), args.methods, args.datasets)
    written = write_plain(table, args.out, "tab:tuning")
    print("\n".join(map(str, written)), file=sys.stderr)
    return 0


def _summary(args: argparse.Namespace) -> int:
    import os

    out = Path(args.out)
    parts = ["# OneBP-Bench results", "",
             "Generated from `results/results.csv` (every row names its run directory).", ""]
    for t in args.tables:
        parts += [f"## {Path(t).stem}", "", Path(t).read_text().rstrip(), ""]
    if args.figures:
        parts += ["## Figures", ""]
        for f in args.figures:
            rel = os.path.relpath(f, out.parent)
            parts += [f"### {Path(f).stem}", "", f"![{Path(f).stem}]({rel})", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts))
    return 0
