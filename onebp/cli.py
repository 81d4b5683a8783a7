"""The ``onebp`` command line: ``train``, ``bench`` and the ``data`` subcommands.

Errors the user can fix (unknown method, unknown ``--set`` key, malformed split or raw file) are
printed as one line ``onebp: error: ...`` with exit code 2; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import sys

from onebp.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onebp", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    from onebp import runner  # local imports keep `onebp --help` fast
    from onebp.data import cli as data_cli

    runner.register(sub)
    data_cli.register(sub)
    from onebp import gpu_slots; gpu_slots.register(sub)  # noqa: E702, I001  (workflow: GPU slots)
    from onebp.report import cli as report_cli; report_cli.register(sub)  # noqa: E702, I001  (workflow: report)
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
