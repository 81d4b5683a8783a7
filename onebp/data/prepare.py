"""Raw files → prepared split directory: the one path every dataset takes.

``prepare``: fetch/verify → parse → implicit (rating threshold) → de-duplicate → iterative k-core →
contiguous ids (maps saved) → split (+ validation) → ``stats.json``, id maps, part files, and
``meta.json`` last, all in a hidden sibling folder that replaces the target only once complete: a
failure leaves the old split (if any) as it was, and no file of the old one survives a re-prepare.

``import_split``: already-split files (OneBP CSVs, LightGCN) → the same format, ids kept as they are
(``n_users``/``n_items`` = max id + 1 over both files), optional validation carved from train.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import onebp
from onebp.atomic import sibling_folder, swap_in_folder
from onebp.data.catalog import Dataset, Defaults
from onebp.data.dataset_stats import STATS_FILE, split_stats, write_stats
from onebp.data.download import FetchOptions, digests, fetch_dataset
from onebp.data.parsers import parse
from onebp.data.preprocess import deduplicate, kcore, remap_ids, to_implicit, write_id_maps
from onebp.data.split_format import PARTS, Split, save_split
from onebp.data.splitting import SPLIT_KINDS, derive_rng, make_split
from onebp.errors import UserError

#: split kinds whose test part is drawn by ``test_ratio`` (the others ignore it)
RATIO_SPLITS = ("ratio", "temporal")


@dataclass(frozen=True)
class PrepareParams(Defaults):
    """The preprocessing parameters of one ``prepare``: the fields (and defaults) of a catalog
    entry's :class:`~onebp.data.catalog.Defaults`, plus the seed of the random split. The one list
    of prepare parameters: the command line and the workflow's config schema follow it (checked by
    tests/workflow/test_config_schema.py)."""

    seed: int = 0

    @classmethod
    def from_defaults(cls, defaults: Defaults, seed: int = 0, **overrides: Any) -> PrepareParams:
        """``defaults`` with the ``overrides`` that are not None (unset command-line options)."""
        values = {f.name: getattr(defaults, f.name) for f in fields(Defaults)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values, seed=seed)

    def check(self) -> None:
        if self.split not in SPLIT_KINDS:
            raise UserError(f"unknown split kind {self.split!r}; known: {', '.join(SPLIT_KINDS)}")
        for name in ("kcore_user", "kcore_item"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')} must be >= 0 (0 = off), got {getattr(self, name)}")
        # NaN compares false with every rating, so it would silently drop the whole dataset.
        if self.min_rating is not None and math.isnan(self.min_rating):
            raise UserError("--min-rating must be a number, got nan")
        for name in ("test_ratio", "valid_ratio"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise UserError(f"--{name.replace('_', '-')} must be in [0, 1), got {getattr(self, name)}")
        if self.split in RATIO_SPLITS and self.test_ratio == 0.0:
            # A ratio split with ratio 0 holds nothing out; say so here rather than 'no test interactions'.
            raise UserError(f"--test-ratio must be > 0 for split {self.split!r} (it sets the held-out share), got 0")


#: ids are kept as they are on import, so every id up to the largest becomes a user or an item
#: (an embedding row; an item ranked at every evaluation). A file whose largest id is far beyond its
#: number of distinct ids (a typo, a hashed id) is refused rather than making millions of phantoms:
#: refused when max id + 1 > ID_RANGE_FACTOR × distinct ids + ID_RANGE_SLACK.
ID_RANGE_FACTOR = 10
ID_RANGE_SLACK = 1000


def _id_line(path: str | os.PathLike, fmt: str, column: str, value: int) -> str:
    """``file:line`` of the first line holding ``value`` as a user/item id (slow scan, error path only)."""
    with open(path, errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split(",") if fmt == "onebp-csv" else line.split()
            if fmt == "onebp-csv":
                cells = fields[:1] if column == "user" else fields[1:2]
            else:  # lightgcn: the user, then its items
                cells = fields[:1] if column == "user" else fields[1:]
            if any(c.strip() == str(value) for c in cells):
                return f"{path}:{lineno}"
    return str(path)


def _check_id_range(frames: dict[str, pd.DataFrame], paths: dict[str, str | os.PathLike], fmt: str) -> None:
    for column in ("user", "item"):
        ids = pd.concat([f[column] for f in frames.values()], ignore_index=True)
        distinct = int(ids.nunique())
        limit = ID_RANGE_FACTOR * distinct + ID_RANGE_SLACK
        for role, f in frames.items():
            top = max(int(f[column].max()) if len(f) else -1,
                      f.attrs.get("max_user", -1) if column == "user" else -1)
            if top + 1 > limit:
                raise UserError(
                    f"{_id_line(paths[role], fmt, column, top)}: {column} id {top} is far beyond the "
                    f"{distinct} distinct {column} ids of the two files (ids are kept as they are, so it "
                    f"would make {top + 1 - distinct} {column}s that never occur; allowed: max id + 1 <= "
                    f"{ID_RANGE_FACTOR} x distinct + {ID_RANGE_SLACK} = {limit}); renumber the ids")


def _check_heldout(parts: dict[str, np.ndarray], info: dict[str, int], test_label: str, train_label: str) -> None:
    """An empty test or validation part would train and then report NaN metrics as a finished run."""
    if len(parts["test"]) == 0:
        raise UserError(
            f"{test_label}: no test interactions left ({info.get('dropped_test_in_train', 0)} also in the "
            f"training data {train_label}, {info.get('dropped_heldout_without_train', 0)} of users without "
            "training interactions); a split needs a non-empty test part")
    if "valid" in parts and len(parts["valid"]) == 0:
        raise UserError(f"{train_label}: the validation ratio carved no interactions out of the training "
                        "data; raise --valid-ratio or use 0 (no validation part)")


#: what a split folder holds (save_split's parts and meta.json, stats.json, prepare's id maps). A
#: re-prepare replaces the whole folder, so one holding anything else (a mistyped --out, the user's
#: own files) is refused rather than deleted.
SPLIT_FILES = frozenset({*(f"{p}.tsv" for p in PARTS), "meta.json", STATS_FILE, "user_map.tsv", "item_map.tsv"})


#: Snakemake's stamp in a directory output (the workflow's prepare jobs write splits so)
SNAKEMAKE_STAMP = ".snakemake_timestamp"


def _is_split_file(name: str) -> bool:
    # also the hidden temporary files of an interrupted atomic write (.train.tsv.XXXX.tmp)
    return (name in SPLIT_FILES or name == SNAKEMAKE_STAMP
            or any(name.startswith(f".{known}.") for known in SPLIT_FILES))


def _begin(out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Check the target and make the hidden sibling folder the split is built in: ``(target, temp)``.
    Building apart and swapping in at the end keeps the old split whole until the new one is complete
    (a failure half-way, e.g. a full disk, loses nothing) and leaves no stale file of the old one."""
    out = Path(out_dir)
    for above in (out, *out.parents):
        if above.exists() or above.is_symlink():
            if not above.is_dir():
                where = "is" if above == out else f"is under {above}, which is"
                raise UserError(f"--out {out}: {where} not a directory (a file); choose another --out")
            break
    out = out.resolve()  # the real folder (through a link), and a parent even for '.'
    if out.is_dir():
        foreign = sorted(n for n in os.listdir(out) if not _is_split_file(n))
        if foreign:
            raise UserError(f"--out {out}: holds {foreign[0]!r}, which is not part of a split "
                            f"({len(foreign)} such entr{'y' if len(foreign) == 1 else 'ies'}); a prepared "
                            "split replaces the whole folder, so choose an empty or new one")
    try:
        tmp = sibling_folder(out, "building")
    except OSError as e:
        raise UserError(f"--out {out}: cannot create a folder next to it ({e.strerror or e})") from e
    return out, tmp


def _finish(out: Path, tmp: Path, split: Split, info: dict[str, int],
            user_ids: np.ndarray | None = None, item_ids: np.ndarray | None = None) -> dict[str, Any]:
    """Write the split into ``tmp`` and swap it in at ``out``; ``tmp`` is removed on any failure."""
    try:
        if user_ids is not None and item_ids is not None:
            write_id_maps(tmp, user_ids, item_ids)
        stats = split_stats(split, info)
        write_stats(tmp, stats)
        save_split(split, tmp)  # writes meta.json last
        swap_in_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return stats


def prepare(
    ds: Dataset, raw_dir: str | os.PathLike, out_dir: str | os.PathLike, params: PrepareParams, fetch: FetchOptions
) -> dict[str, Any]:
    """Prepare ``ds`` into ``out_dir``; returns the statistics written to ``stats.json``."""
    params.check()
    if params.split == "given" and not ds.has_given_split:
        raise UserError(f"dataset {ds.name!r} has no published train/test files; split 'given' is not possible")
    records = fetch_dataset(ds, raw_dir, fetch)
    frames = []
    for rec in records:
        frame = parse(rec["path"], rec["format"])
        frame["_part"] = rec["role"]
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    n_raw = len(frame)
    raw, frame = frame, to_implicit(frame, params.min_rating)
    n_implicit = len(frame)
    if n_implicit == 0 and n_raw and params.min_rating is not None:
        # Name the flag and the ratings seen: 'nothing left after preprocessing' hides which step emptied it.
        ratings = raw["rating"]
        raise UserError(f"--min-rating {params.min_rating:g} keeps none of dataset {ds.name!r}'s {n_raw} ratings "
                        f"(they range from {ratings.min():g} to {ratings.max():g})")
    if params.split == "given":
        # De-duplicate per part; a pair in both parts stays in train (make_split drops it from test).
        frame = pd.concat([deduplicate(g) for _, g in frame.groupby("_part", sort=True)], ignore_index=True)
        uniq = frame.drop_duplicates(["user", "item"])
    else:
        frame = uniq = deduplicate(frame)
    n_dedup = len(uniq)
    core = kcore(uniq, params.kcore_user, params.kcore_item)
    if params.kcore_user or params.kcore_item:
        key = frame["user"].to_numpy() * (1 << 32) + frame["item"].to_numpy()
        frame = frame[np.isin(key, core["user"].to_numpy() * (1 << 32) + core["item"].to_numpy())]
    if len(frame) == 0:
        raise UserError(f"dataset {ds.name!r}: no interactions left after preprocessing ({n_dedup} distinct pairs "
                        f"before the k-core, user >= {params.kcore_user}, item >= {params.kcore_item} removed them all)"
                        if n_dedup else f"dataset {ds.name!r}: no interactions left after preprocessing")
    frame, user_ids, item_ids = remap_ids(frame)
    n_users, n_items = len(user_ids), len(item_ids)

    ts = frame["timestamp"].to_numpy() if "timestamp" in frame.columns else None
    rngs = {p: derive_rng(ds.name, params.split, params.seed, p) for p in ("test", "valid")}
    if params.split == "given":
        tr, te = frame[frame["_part"] == "train"], frame[frame["_part"] == "test"]
        parts, info = make_split(
            "given", tr[["user", "item"]].to_numpy(), n_users, valid_ratio=params.valid_ratio,
            rng_test=rngs["test"], rng_valid=rngs["valid"],
            timestamps=tr["timestamp"].to_numpy() if ts is not None else None,
            given_test=te[["user", "item"]].to_numpy(),
        )
    else:
        parts, info = make_split(
            params.split, frame[["user", "item"]].to_numpy(), n_users, test_ratio=params.test_ratio,
            valid_ratio=params.valid_ratio, rng_test=rngs["test"], rng_valid=rngs["valid"], timestamps=ts,
        )
    _check_heldout(parts, info, f"dataset {ds.name!r}", f"dataset {ds.name!r}")
    provenance = {
        "dataset": ds.name,
        "description": ds.description,
        "citation": ds.citation,
        "licence": ds.licence,
        "files": [{k: v for k, v in r.items() if k != "path"} for r in records],
        "allow_unverified": any(r.get("allow_unverified") for r in records),
        "offline": fetch.offline,
        "preprocessing": {
            "kcore_user": params.kcore_user,
            "kcore_item": params.kcore_item,
            "min_rating": params.min_rating,
            "deduplicate": "earliest timestamp per (user, item), else first in file order",
            "id_remap": "contiguous, increasing original id (user_map.tsv, item_map.tsv)",
        },
        "counts": {"raw": n_raw, "after_min_rating": n_implicit, "after_dedup": n_dedup, "after_kcore": len(core)},
        "split": {
            "kind": params.split,
            "test_ratio": None if params.split == "given" or params.split.startswith("loo") else params.test_ratio,
            "valid_ratio": params.valid_ratio,
            "seed": params.seed,
            "rng": "numpy default_rng(sha256(dataset, split, seed, part))",
            "dropped": info,
        },
        "onebp_version": onebp.__version__,
    }
    split = Split(n_users=n_users, n_items=n_items, parts=parts, name=ds.name, provenance=provenance)
    return _finish(*_begin(out_dir), split, info, user_ids, item_ids)


IMPORT_FORMATS = {"onebp-csv": "onebp-csv", "lightgcn": "lightgcn"}


def import_split(
    fmt: str,
    train: str | os.PathLike,
    test: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    valid_ratio: float = 0.0,
    seed: int = 0,
    name: str | None = None,
) -> dict[str, Any]:
    """Convert already-split files into a split directory, keeping their ids."""
    if fmt not in IMPORT_FORMATS:
        raise UserError(f"unknown import format {fmt!r}; known: {', '.join(IMPORT_FORMATS)}")
    if not 0.0 <= valid_ratio < 1.0:
        raise UserError(f"--valid-ratio must be in [0, 1), got {valid_ratio}")
    name = name or Path(out_dir).name
    frames = {}
    for role, path in (("train", train), ("test", test)):
        if not Path(path).is_file():
            raise UserError(f"{path}: no such file")
        frames[role] = parse(path, IMPORT_FORMATS[fmt])
    n_users = 1 + max(max(int(f["user"].max()) if len(f) else -1, f.attrs.get("max_user", -1)) for f in frames.values())
    n_items = 1 + max(int(f["item"].max()) if len(f) else -1 for f in frames.values())
    if n_users <= 0 or n_items <= 0:
        raise UserError(f"{train}, {test}: no interactions")
    _check_id_range(frames, {"train": train, "test": test}, IMPORT_FORMATS[fmt])
    rngs = {p: derive_rng(name, "given", seed, p) for p in ("test", "valid")}
    parts, info = make_split(
        "given", frames["train"][["user", "item"]].to_numpy(), n_users, valid_ratio=valid_ratio,
        rng_test=rngs["test"], rng_valid=rngs["valid"], given_test=frames["test"][["user", "item"]].to_numpy(),
    )
    _check_heldout(parts, info, str(test), str(train))
    provenance = {
        "dataset": name,
        "imported": {
            "format": fmt,
            "files": [
                {"role": role, "path": str(Path(p).resolve()), **digests(p)} for role, p in (("train", train), ("test", test))
            ],
            "ids": "kept as in the files; n_users/n_items = max id + 1 over both files",
        },
        "split": {"kind": "given", "valid_ratio": valid_ratio, "seed": seed,
                  "rng": "numpy default_rng(sha256(name, 'given', seed, part))", "dropped": info},
        "onebp_version": onebp.__version__,
    }
    split = Split(n_users=n_users, n_items=n_items, parts=parts, name=name, provenance=provenance)
    return _finish(*_begin(out_dir), split, info)
