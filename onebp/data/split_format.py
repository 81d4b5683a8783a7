"""The on-disk format of a prepared dataset split, and loading it.

A split directory holds::

    meta.json     {"format": "onebp-split/1", "name", "n_users", "n_items",
                   "parts": {"train": n, "valid": n, "test": n}, "provenance": {...}}
    train.tsv     header ``user<TAB>item``, then one 0-based integer pair per line
    valid.tsv     optional (absent when the split has no validation part)
    test.tsv

Ids are contiguous (``0 <= user < n_users``, ``0 <= item < n_items``). Pairs are unique inside a
part and the parts are disjoint. Files are written sorted by (user, item) so the same split always
has the same bytes. Every write goes to a temporary file in the same directory and is renamed into
place, so a crash never leaves a half-written split behind.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onebp.atomic import atomic_path, atomic_write_json
from onebp.errors import UserError

FORMAT = "onebp-split/1"
PARTS = ("train", "valid", "test")


class SplitError(UserError, ValueError):
    """A split directory or file is malformed; the message names the file (and line)."""


@dataclass
class Split:
    """A prepared split: interactions per part as int64 arrays of shape (n, 2) = (user, item)."""

    n_users: int
    n_items: int
    parts: dict[str, np.ndarray]
    name: str = "unnamed"
    provenance: dict[str, Any] = field(default_factory=dict)

    def part(self, name: str) -> np.ndarray:
        if name not in self.parts:
            raise SplitError(f"split {self.name!r} has no {name!r} part (has: {sorted(self.parts)})")
        return self.parts[name]

    @property
    def has_valid(self) -> bool:
        return "valid" in self.parts and len(self.parts["valid"]) > 0


def sorted_unique(a: np.ndarray) -> np.ndarray:
    """``np.unique`` of a 1-D array via one sort (numpy>=2.3's hash-based unique is slower here)."""
    a = np.sort(np.asarray(a).reshape(-1))
    if len(a) < 2:
        return a
    return a[np.concatenate([[True], a[1:] != a[:-1]])]


def canonical_pairs(pairs: np.ndarray) -> np.ndarray:
    """Unique (user, item) rows sorted by user then item."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if len(pairs) == 0:
        return pairs
    if pairs.min() < 0:
        return np.unique(pairs, axis=0)
    # One int64 key per row: a 1-D sort is several times faster than np.unique(axis=0) on rows.
    width = int(pairs[:, 1].max()) + 1
    keys = sorted_unique(pairs[:, 0] * width + pairs[:, 1])
    return np.stack([keys // width, keys % width], axis=1)


def save_split(split: Split, out_dir: str | os.PathLike) -> Path:
    """Write ``split`` to ``out_dir`` (created if needed). Validates before writing anything."""
    validate_split(split)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name in PARTS:
        target = out / f"{name}.tsv"
        if name not in split.parts:
            target.unlink(missing_ok=True)
            continue
        pairs = canonical_pairs(split.parts[name])
        counts[name] = int(len(pairs))
        with atomic_path(target) as tmp, open(tmp, "w") as f:
            # Same bytes as np.savetxt(fmt="%d", delimiter="\t"), several times faster.
            import pandas as pd  # here, not at the top: loading a split (every run) needs no pandas

            pd.DataFrame(pairs, columns=["user", "item"]).to_csv(f, sep="\t", index=False, lineterminator="\n")
    meta = {
        "format": FORMAT,
        "name": split.name,
        "n_users": int(split.n_users),
        "n_items": int(split.n_items),
        "parts": counts,
        "provenance": split.provenance,
    }
    # meta.json last: its presence marks a complete split.
    atomic_write_json(out / "meta.json", meta)
    return out


def _read_pairs(path: Path) -> np.ndarray:
    # numpy's C parser, as fast as pandas' here; pandas is not imported on the train path (~0.4 s)
    try:
        with open(path, encoding="utf-8") as f:
            header = f.readline().rstrip("\r\n").split("\t")
            if header != ["user", "item"]:
                raise SplitError(f"{path}:1: expected header 'user<TAB>item', got {header}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "input contained no data": an empty part
                pairs = np.loadtxt(f, dtype=np.int64, delimiter="\t", comments=None, ndmin=2)
    except SplitError:
        raise
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too: _first_bad_line names its line
        raise SplitError(_first_bad_line(path) or f"{path}: cannot parse: {exc}") from None
    if pairs.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    if pairs.shape[1] != 2:
        raise SplitError(_first_bad_line(path) or f"{path}: expected two columns 'user<TAB>item'")
    return pairs


def _first_bad_line(path: Path) -> str | None:
    """Slow scan used only after the fast parser failed, to name the offending line."""
    # Bytes, decoded line by line: a part that is not UTF-8 must end in its line, not a traceback.
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                return f"{path}:{lineno}: not UTF-8 text (a split part is 'user<TAB>item' lines)"
            if lineno == 1:
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 2 or not all(x.strip().lstrip("-").isdigit() for x in fields):
                return f"{path}:{lineno}: expected two integers 'user<TAB>item', got {line.rstrip()!r}"
    return None


def load_split(split_dir: str | os.PathLike) -> Split:
    """Load and validate a split directory written by :func:`save_split`."""
    root = Path(split_dir)
    meta_path = root / "meta.json"
    if not meta_path.is_file():
        raise SplitError(f"{root}: not a prepared split (no meta.json)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SplitError(f"{meta_path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    except UnicodeDecodeError:
        raise SplitError(f"{meta_path}: not UTF-8 text") from None
    if not isinstance(meta, dict):
        raise SplitError(f"{meta_path}: expected a JSON object, got {type(meta).__name__}")
    for key in ("format", "n_users", "n_items", "parts"):
        if key not in meta:
            raise SplitError(f"{meta_path}: missing key {key!r}")
    if meta["format"] != FORMAT:
        raise SplitError(f"{meta_path}: format {meta['format']!r}, expected {FORMAT!r}")
    # Types before use: a hand-edited meta.json would otherwise fail as a TypeError traceback
    # ("parts": [...]) or a self-contradicting count ("319 interactions, meta.json says 319").
    for key in ("n_users", "n_items"):
        _check_count(meta_path, key, meta[key])
    if not isinstance(meta["parts"], dict):
        raise SplitError(f"{meta_path}: key 'parts' must be an object of part name → interaction count, "
                         f"got {type(meta['parts']).__name__}")
    for name, count in meta["parts"].items():
        _check_count(meta_path, f"parts.{name}", count)
    parts = {}
    for name in PARTS:
        path = root / f"{name}.tsv"
        if name in meta["parts"]:
            if not path.is_file():
                raise SplitError(f"{path}: listed in meta.json but missing")
            parts[name] = _read_pairs(path)
            if len(parts[name]) != meta["parts"][name]:
                raise SplitError(
                    f"{path}: {len(parts[name])} interactions, meta.json says {meta['parts'][name]}"
                )
    split = Split(
        n_users=int(meta["n_users"]),
        n_items=int(meta["n_items"]),
        parts=parts,
        name=str(meta.get("name", root.name)),
        provenance=meta.get("provenance", {}),
    )
    validate_split(split, where=str(root))
    return split


def _check_count(meta_path: Path, key: str, value: Any) -> None:
    """A count in meta.json must be a JSON integer >= 0 (not a string, a float or a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SplitError(f"{meta_path}: key {key!r} must be a non-negative integer, got {value!r}")


def validate_split(split: Split, where: str | None = None) -> None:
    """Check ids in range, unique pairs per part, disjoint parts; raise SplitError naming the part."""
    label = where or split.name
    if "train" not in split.parts or "test" not in split.parts:
        raise SplitError(f"{label}: a split needs at least 'train' and 'test' parts")
    keys = {}
    for name, pairs in split.parts.items():
        if name not in PARTS:
            raise SplitError(f"{label}: unknown part {name!r} (expected one of {PARTS})")
        pairs = np.asarray(pairs)
        if pairs.ndim != 2 or pairs.shape[1] != 2:
            raise SplitError(f"{label}/{name}: expected (n, 2) pairs, got shape {pairs.shape}")
        if len(pairs) == 0:
            keys[name] = np.empty(0, dtype=np.int64)
            continue
        for col, bound, what in ((0, split.n_users, "user"), (1, split.n_items, "item")):
            bad = np.flatnonzero((pairs[:, col] < 0) | (pairs[:, col] >= bound))
            if len(bad):
                row = bad[0]
                raise SplitError(
                    f"{label}/{name}.tsv:{row + 2}: {what} id {pairs[row, col]} outside [0, {bound})"
                )
        key = pairs[:, 0].astype(np.int64) * split.n_items + pairs[:, 1]
        uniq = sorted_unique(key)
        if len(uniq) != len(key):
            raise SplitError(f"{label}/{name}: {len(key) - len(uniq)} duplicate (user, item) pairs")
        keys[name] = uniq
    names = list(keys)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            common = np.intersect1d(keys[names[a]], keys[names[b]], assume_unique=True)
            if len(common):
                u, i = divmod(int(common[0]), split.n_items)
                raise SplitError(
                    f"{label}: parts {names[a]!r} and {names[b]!r} share {len(common)} pairs, "
                    f"e.g. user {u} item {i}"
                )
