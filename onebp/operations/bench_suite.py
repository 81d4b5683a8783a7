"""``onebp bench-suite``: interleaved, repeated timing of several methods on one split.

Efficiency numbers are only believable when measured alone, interleaved and repeated, so this runs
``onebp bench`` (a fresh process per measurement: its own peak memory, no warm caches carried over)
``repeats`` times per method, alternating the order every repeat (A B, B A, A B, … so that a drift of
the machine's speed hits every method alike), and reports per method and phase the median over the
repeats with its spread (min, max, interquartile range). The workflow's ``bench`` rule runs it as the
only job on the machine (workflow/rules/bench.smk).

Written: ``<out>.json`` (every repeat's raw ``onebp bench`` record and the summary) and ``<out>.csv``
(long: method, quantity, median, min, max, q25, q75, n).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from onebp.atomic import atomic_write, atomic_write_json
from onebp.errors import UserError

#: what the summary reports per method, from each ``onebp bench`` record
QUANTITIES = ("epoch_seconds_median", "eval_seconds_median", "epoch_cpu_seconds_median",
              "peak_rss_train_mb", "peak_rss_mb", "peak_gpu_train_mb", "peak_gpu_eval_mb")
PHASES = ("sample", "prepare", "step", "aggregate")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench-suite", help="interleaved, repeated `onebp bench` of several methods; medians and spread")
    p.add_argument("--data", required=True, help="prepared split directory")
    p.add_argument("--methods", required=True, help="comma-separated, e.g. onebp,twobp")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--epochs", type=int, default=10, help="timed epochs per repeat")
    p.add_argument("--evals", type=int, default=5, help="timed evaluations per repeat")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--params-file", action="append", default=[], metavar="METHOD=JSON",
                   help="a method's settings (e.g. its tuning's best.json; repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="for every method")
    p.add_argument("--method-set", action="append", default=[], metavar="METHOD:KEY=VALUE",
                   help="for one method (after --set; repeatable)")
    p.add_argument("--out", required=True, help="output prefix: writes <out>.json and <out>.csv")
    p.set_defaults(func=cmd_bench_suite)


def order(methods: list[str], repeat: int) -> list[str]:
    """The interleaved order of one repeat: as given on even repeats, reversed on odd ones."""
    return list(methods) if repeat % 2 == 0 else list(reversed(methods))


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method and quantity (the QUANTITIES and seconds per phase): median and spread over repeats."""
    import numpy as np

    rows = []
    methods = list(dict.fromkeys(r["method"] for r in records))
    for m in methods:
        mine = [r for r in records if r["method"] == m]
        values: dict[str, list[float]] = {}
        for r in mine:
            for q in QUANTITIES:
                if r.get(q) is not None:
                    values.setdefault(q, []).append(float(r[q]))
            for ph, v in (r.get("phase_seconds_median") or {}).items():
                values.setdefault(f"phase_{ph}_seconds", []).append(float(v))
        for q, v in values.items():
            a = np.asarray(v)
            rows.append({"method": m, "quantity": q, "median": float(np.median(a)), "min": float(a.min()),
                         "max": float(a.max()), "q25": float(np.percentile(a, 25)),
                         "q75": float(np.percentile(a, 75)), "n": len(a)})
    return rows


def _last_line(text: str) -> str:
    """The last non-empty line of a child's stderr: its one-line error (the report stays one line)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][-400:] if lines else "(no message)"


def check_settings(data: str, methods: list[str], params: dict[str, str], sets: list[str],
                   own: dict[str, list[str]]) -> None:
    """The split and every method's settings, resolved here as each child would: a bad split, an
    unknown method or ``--set`` key is refused once, in one line, before any child starts (each
    child costs seconds of start-up, and would fail the same way)."""
    from onebp.config import parse_assignments, resolve_config
    from onebp.data.split_format import load_split
    from onebp.methods.registry import discover, get_method
    from onebp.training.commands import read_params_file

    split = load_split(data)
    discover()
    for m in methods:
        method = get_method(m)
        overrides = dict(read_params_file(params[m])) if m in params else {}
        overrides.update(parse_assignments([*sets, *own.get(m, [])]))
        resolve_config(method.name, method.params, method.defaults, split.name, overrides,
                       onebp_update=method.onebp_update)


def cmd_bench_suite(args: argparse.Namespace) -> int:
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise UserError(f"--methods {args.methods!r}: names no method (comma-separated names)")
    # Checked here, before the first child: each repeat would otherwise fail the same way, or time
    # nothing (--epochs 0 is a median of no epochs).
    for flag, value, least in (("--repeats", args.repeats, 1), ("--epochs", args.epochs, 1),
                               ("--evals", args.evals, 1), ("--warmup", args.warmup, 0)):
        if value < least:
            raise UserError(f"bench-suite: {flag} {value}: must be at least {least}")
    if not Path(args.data).is_dir():
        raise UserError(f"--data {args.data}: not a directory (a prepared split)")
    if Path(args.out).name in ("", ".", "..") or Path(args.out).is_dir() or args.out.endswith("/"):
        raise UserError(f"--out {args.out!r}: an output prefix (writes <out>.json and <out>.csv), not a directory")
    params: dict[str, str] = {}
    for item in args.params_file:
        m, sep, path = item.partition("=")
        if not sep or m not in methods:
            raise UserError(f"--params-file {item!r}: expected METHOD=FILE with METHOD in {methods}")
        if not Path(path).is_file():
            raise UserError(f"--params-file {item}: {path} is not a file")
        params[m] = path
    own: dict[str, list[str]] = {}
    for item in args.method_set:
        m, sep, kv = item.partition(":")
        if not sep or m not in methods or "=" not in kv:
            raise UserError(f"--method-set {item!r}: expected METHOD:KEY=VALUE with METHOD in {methods}")
        own.setdefault(m, []).append(kv)
    check_settings(args.data, methods, params, args.set, own)
    records = []
    for rep in range(args.repeats):
        for m in order(methods, rep):
            cmd = [sys.executable, "-m", "onebp", "bench", "--data", args.data, "--method", m,
                   "--epochs", str(args.epochs), "--evals", str(args.evals), "--warmup", str(args.warmup)]
            if m in params:
                cmd += ["--params-file", params[m]]
            for s in args.set + own.get(m, []):
                cmd += ["--set", s]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise UserError(f"bench-suite: `onebp bench --method {m}` (repeat {rep}) failed: "
                                f"{_last_line(proc.stderr)}")
            try:
                record = json.loads(proc.stdout.strip().splitlines()[-1])
            except (IndexError, json.JSONDecodeError):
                raise UserError(f"bench-suite: `onebp bench --method {m}` printed no JSON record") from None
            records.append({**record, "repeat": rep})
            print(f"repeat {rep} {m}: {record['epoch_seconds_median']:.4f} s/epoch", file=sys.stderr)
    summary = summarize(records)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # appended, not with_suffix: a prefix named after a dataset with a dot (yelp.2018) keeps its name
    json_out, csv_out = out.with_name(out.name + ".json"), out.with_name(out.name + ".csv")
    atomic_write_json(json_out, {
        "data": args.data, "methods": methods, "repeats": args.repeats, "epochs": args.epochs,
        "evals": args.evals, "warmup": args.warmup, "sets": args.set, "method_sets": own, "params_files": params,
        "interleaving": "methods in the given order on even repeats, reversed on odd repeats",
        "records": records, "summary": summary,
    })
    cols = ["method", "quantity", "median", "min", "max", "q25", "q75", "n"]
    lines = [",".join(cols)] + [",".join(str(r[c]) for c in cols) for r in summary]
    atomic_write(csv_out, "\n".join(lines) + "\n")
    return 0
