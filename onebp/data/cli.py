"""``onebp data ...`` subcommands."""

from __future__ import annotations

import argparse
import json

from onebp.data.split import save_split
from onebp.data.synthetic import SyntheticConfig, synthetic_split


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="prepare, import and inspect datasets")
    dsub = data.add_subparsers(dest="data_command", required=True)

    p = dsub.add_parser("synth", help="write a synthetic split with planted structure")
    p.add_argument("--out", required=True, help="split directory to write")
    for name, default in SyntheticConfig().__dict__.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    p.set_defaults(func=_synth)


def _synth(args: argparse.Namespace) -> int:
    fields = SyntheticConfig().__dict__
    cfg = SyntheticConfig(**{k: getattr(args, k) for k in fields})
    split = synthetic_split(cfg)
    save_split(split, args.out)
    print(json.dumps({"out": args.out, **{k: len(v) for k, v in split.parts.items()}}))
    return 0
