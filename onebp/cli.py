"""The ``onebp`` command line: ``train``, ``bench``, ``methods``, ``tune``, ``data``, ``report``, ``gpu-run``,
``status``, ``estimate``, ``study``.

Errors the user can fix (unknown method, unknown ``--set`` key, malformed split or raw file) are
printed as one line ``onebp: error: ...`` with exit code 2; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import sys

from onebp.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    # Each module registers its subcommands; heavy imports (torch, pandas) wait for the handler,
    # so `onebp data ...` and `onebp --help` start fast.
    from onebp.data import cli as data_cli
    from onebp.operations import bench_suite, estimate, gpu_slots, status, study_archive
    from onebp.report import cli as report_cli
    from onebp.training import commands
    from onebp.tuning import cli as tune_cli

    parser = argparse.ArgumentParser(prog="onebp", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (commands, bench_suite, tune_cli, data_cli, report_cli, gpu_slots, status, estimate, study_archive):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"onebp: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("onebp: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
