"""``onebp data ...`` subcommands: ``download``, ``prepare``, ``import``, ``stats``, ``synth``.

Datasets are entries of the dataset catalog (``onebp.data.catalog``) or custom ones, for data the
catalog does not know or for mirrors (the workflow's smoke preset uses this):

* ``--url URL [--sha256 HEX] --format FMT [--test-url URL --test-sha256 HEX]`` with ``--dataset NAME``
  naming the custom dataset (its raw folder). FMT is a key of ``catalog.CUSTOM_FORMATS``
  (``ml-100k-zip``, ``u.data``, ``lightgcn``, …); with ``--test-url`` the two files are a published
  train/test split (``--split given`` by default). Without a checksum the file is refused unless
  ``--allow-unverified``.
* ``--dataset-file FILE``: a JSON definition (see ``catalog.custom_dataset``) with several files,
  default preprocessing and expected statistics.
* ``--base-url URL``: a catalog entry fetched from a mirror (``URL/<filename>``), same checksums.

Examples::

    onebp data download --dataset ml-100k --raw-dir data/raw
    onebp data prepare --dataset ml-100k --raw-dir data/raw --out data/splits/ml-100k   # paper 80/20
    onebp data prepare --dataset gowalla --raw-dir data/raw --out s/gowalla --split given --offline
    onebp data prepare --dataset tiny --url http://host/ml-100k.zip --sha256 ... --format ml-100k-zip \\
        --raw-dir data/raw --out data/splits/tiny
    onebp data import --format onebp-csv --train 100k_train.csv --test 100k_test.csv --out s/onebp
    onebp data stats --root data/splits
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re

from onebp.data.split_format import save_split
from onebp.data.splitting import SPLIT_KINDS
from onebp.data.synthetic import SyntheticConfig, synthetic_split
from onebp.errors import UserError
from onebp.safe_paths import safe_name


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="prepare, import and inspect datasets")
    dsub = data.add_subparsers(dest="data_command", required=True)

    p = dsub.add_parser("synth", help="write a synthetic split with planted structure")
    p.add_argument("--out", required=True, help="split directory to write")
    for name, default in SyntheticConfig().__dict__.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    p.set_defaults(func=_synth)

    p = dsub.add_parser("download", help="download (or verify placed) raw files of a dataset")
    _dataset_args(p)
    p.set_defaults(func=_download)

    p = dsub.add_parser("prepare", help="raw files -> preprocessed split directory")
    _dataset_args(p)
    p.add_argument("--out", required=True, help="split directory to write")
    p.add_argument("--kcore-user", type=int, default=None, help="min interactions per user (0 = off)")
    p.add_argument("--kcore-item", type=int, default=None, help="min interactions per item (0 = off)")
    p.add_argument("--min-rating", type=float, default=None, help="keep ratings >= R (default: all)")
    p.add_argument("--split", default=None, help=" | ".join(SPLIT_KINDS))
    p.add_argument("--test-ratio", type=float, default=None)
    p.add_argument("--valid-ratio", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_prepare)

    p = dsub.add_parser("import", help="convert already-split files into a split directory")
    p.add_argument("--format", required=True, help="onebp-csv | lightgcn")
    p.add_argument("--train", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--valid-ratio", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default=None, help="split name (default: the --out folder's name)")
    p.set_defaults(func=_import)

    p = dsub.add_parser("stats", help="table of prepared splits next to the published statistics")
    p.add_argument("--root", default="data/splits", help="folder searched for prepared splits")
    p.set_defaults(func=_stats)


def _dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help="catalog name, or the name of a custom dataset (--url)")
    p.add_argument("--dataset-file", help="JSON definition of a custom dataset")
    p.add_argument("--raw-dir", required=True, help="raw files live in RAW_DIR/<dataset>/")
    p.add_argument("--offline", action="store_true", help="never fetch; use files placed in RAW_DIR")
    p.add_argument("--allow-unverified", action="store_true", help="accept files with unknown/different checksums")
    p.add_argument("--url", help="custom dataset: file URL")
    p.add_argument("--sha256", help="custom dataset: expected sha256 of --url")
    p.add_argument("--format", dest="fmt", help="custom dataset: file format")
    p.add_argument("--test-url", help="custom dataset: URL of the published test file")
    p.add_argument("--test-sha256", help="custom dataset: expected sha256 of --test-url")
    p.add_argument("--base-url", help="fetch a catalog entry's files from BASE_URL/<filename>")
    p.add_argument("--retries", type=int, default=4)
    p.add_argument("--backoff", type=float, default=1.0, help="retry backoff factor in seconds")


_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def _resolve_dataset(args: argparse.Namespace):
    from onebp.data.catalog import (
        CUSTOM_FORMATS,
        custom_dataset,
        get_dataset,
        load_dataset_file,
        with_base_url,
    )

    if args.dataset_file:
        ds = load_dataset_file(args.dataset_file)
        if args.dataset and args.dataset != ds.name:
            # The workflow passes --dataset with every source: that name decides RAW_DIR/<name>.
            ds = dataclasses.replace(ds, name=safe_name(args.dataset, "--dataset"))
    elif args.url:
        # before anything is fetched: a mistyped checksum would cost the whole download, then fail
        for flag, value in (("--sha256", args.sha256), ("--test-sha256", args.test_sha256)):
            if value is not None and not _SHA256.fullmatch(value):
                raise UserError(f"{flag} must be 64 hexadecimal digits (a sha256), got {value!r} "
                                f"({len(value)} characters)")
        if not args.dataset:
            raise UserError("--url needs --dataset NAME (the custom dataset's name)")
        if not args.fmt:
            raise UserError(f"--url needs --format ({', '.join(CUSTOM_FORMATS)})")
        files = [{"role": "train" if args.test_url else "all", "format": args.fmt, "url": args.url, "sha256": args.sha256}]
        if args.test_url:
            files.append({"role": "test", "format": args.fmt, "url": args.test_url, "sha256": args.test_sha256})
        ds = custom_dataset({"name": args.dataset, "files": files})
    elif args.dataset:
        if args.fmt or args.sha256 or args.test_url:
            raise UserError("--format/--sha256/--test-url describe a custom dataset and need --url")
        ds = get_dataset(args.dataset)
    else:
        raise UserError("name a dataset with --dataset (or --url/--dataset-file for a custom one)")
    if args.base_url:
        ds = with_base_url(ds, args.base_url)
    return ds


def _fetch_options(args: argparse.Namespace):
    from onebp.data.download import FetchOptions

    if args.retries < 0:
        raise UserError(f"--retries must be >= 0, got {args.retries}")
    # NaN slips past '< 0', and an infinite backoff would make the first retry wait forever.
    if not math.isfinite(args.backoff) or args.backoff < 0:
        raise UserError(f"--backoff must be a finite number of seconds >= 0, got {args.backoff}")
    return FetchOptions(
        offline=args.offline, allow_unverified=args.allow_unverified, retries=args.retries, backoff=args.backoff
    )


def _download(args: argparse.Namespace) -> int:
    from onebp.data.download import fetch_dataset

    ds = _resolve_dataset(args)
    records = fetch_dataset(ds, args.raw_dir, _fetch_options(args))
    for rec in records:
        state = "verified" if rec.get("verified") else "UNVERIFIED (allowed)"
        print(f"{ds.name}: {rec['path']} ({rec['origin']}, {state})")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from onebp.data.prepare import PrepareParams, prepare

    ds = _resolve_dataset(args)
    # Options left unset take the dataset's own defaults.
    params = PrepareParams.from_defaults(ds.defaults, seed=args.seed, **{
        f.name: getattr(args, f.name) for f in dataclasses.fields(ds.defaults)})
    stats = prepare(ds, args.raw_dir, args.out, params, _fetch_options(args))
    print(json.dumps({"out": args.out, "n_users": stats["n_users"], "n_items": stats["n_items"],
                      **{k: v["n_interactions"] for k, v in stats["parts"].items()}}))
    return 0


def _import(args: argparse.Namespace) -> int:
    from onebp.data.prepare import import_split

    stats = import_split(
        args.format, args.train, args.test, args.out, valid_ratio=args.valid_ratio, seed=args.seed, name=args.name
    )
    print(json.dumps({"out": args.out, "n_users": stats["n_users"], "n_items": stats["n_items"],
                      **{k: v["n_interactions"] for k, v in stats["parts"].items()}}))
    return 0


def _stats(args: argparse.Namespace) -> int:
    from pathlib import Path

    from onebp.data.dataset_stats import stats_table

    if not Path(args.root).is_dir():
        raise UserError(f"{args.root}: no such directory")
    print(stats_table(args.root))
    return 0


def _synth(args: argparse.Namespace) -> int:
    fields = SyntheticConfig().__dict__
    cfg = SyntheticConfig(**{k: getattr(args, k) for k in fields})
    cfg.check()  # before anything is generated or written
    split = synthetic_split(cfg)
    save_split(split, args.out)
    print(json.dumps({"out": args.out, **{k: len(v) for k, v in split.parts.items()}}))
    return 0
