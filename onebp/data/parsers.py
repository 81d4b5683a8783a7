"""Parsers for the raw interaction formats; each returns a DataFrame with int64 ``user``, ``item``
(and ``rating``, ``timestamp`` where the format has them).

The good path is pandas' C engine (or numpy for LightGCN's ragged lines). Only when it fails does a
slow line-by-line scan run, to raise a :class:`UserError` naming the file, line number and text.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from onebp.errors import UserError

COLUMNS = ("user", "item", "rating", "timestamp")


def _fail(path: Path, lineno: int, expected: str, line: str) -> UserError:
    return UserError(f"{path.name}:{lineno}: expected {expected}, got {line.rstrip(chr(10))[:200]!r}")


#: what the fast parsers read as an integer. ASCII digits only: str.isdigit also accepts '٣' or '²',
#: which pandas refuses, so the scan would find no bad line.
_INT = re.compile(r"-?[0-9]+")
_INT64 = (-(1 << 63), (1 << 63) - 1)


def _is_int(s: str) -> bool:
    s = s.strip()
    # ...and within int64: a 20-digit id overflows pandas/numpy (OverflowError, then this scan)
    return _INT.fullmatch(s) is not None and _INT64[0] <= int(s) <= _INT64[1]


def _scan(path: Path, text: str, check: Callable[[str], bool], expected: str, skip: int = 0) -> UserError:
    """Find the first line ``check`` rejects; called only after the fast path failed."""
    if not text.strip():
        return UserError(f"{path.name}: no interactions (empty file)")
    for lineno, line in enumerate(text.splitlines(), start=1):
        if lineno <= skip:
            continue
        if not check(line):
            return _fail(path, lineno, expected, line)
    return UserError(f"{path.name}: cannot parse (no single malformed line found)")


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from None


def _int_frame(path: Path, text: str, sep: str, names: list[str], header: int | None) -> pd.DataFrame:
    frame = pd.read_csv(
        io.StringIO(text), sep=sep, header=header, names=names if header is None else None,
        dtype=np.int64, engine="c",
    )
    if header is not None:
        frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def parse_udata(path: str | os.PathLike) -> pd.DataFrame:
    """ML-100K ``u.data``: ``user<TAB>item<TAB>rating<TAB>timestamp``."""
    path = Path(path)
    text = _read_text(path)
    expected = "4 tab-separated integers 'user item rating timestamp'"
    try:
        return _int_frame(path, text, "\t", list(COLUMNS), None)
    except (ValueError, OverflowError, pd.errors.ParserError, pd.errors.EmptyDataError):
        def ok(line: str) -> bool:
            f = line.split("\t")
            return len(f) == 4 and all(map(_is_int, f))
        raise _scan(path, text, ok, expected) from None


def parse_ratings_dat(path: str | os.PathLike) -> pd.DataFrame:
    """ML-1M ``ratings.dat``: ``user::item::rating::timestamp``."""
    path = Path(path)
    text = _read_text(path)
    expected = "'user::item::rating::timestamp' (4 integers)"
    # A multi-character separator would force pandas' slow python engine: swap it for a tab first.
    # A stray tab in the input would then be caught as a malformed line by the scan below.
    try:
        if "\t" in text:
            raise ValueError("tab in a '::' file")
        return _int_frame(path, text.replace("::", "\t"), "\t", list(COLUMNS), None)
    except (ValueError, OverflowError, pd.errors.ParserError, pd.errors.EmptyDataError):
        def ok(line: str) -> bool:
            f = line.split("::")
            return len(f) == 4 and all(map(_is_int, f))
        raise _scan(path, text, ok, expected) from None


def parse_onebp_csv(path: str | os.PathLike) -> pd.DataFrame:
    """OneBP's CSVs: header ``user,item,rating``, then integer rows."""
    path = Path(path)
    text = _read_text(path)
    first = text.split("\n", 1)[0].strip()
    if [c.strip() for c in first.split(",")][:2] != ["user", "item"]:
        raise UserError(f"{path.name}:1: expected header 'user,item,rating', got {first[:200]!r}")
    ncol = len(first.split(","))
    try:
        frame = _int_frame(path, text, ",", [], 0)
    except (ValueError, OverflowError, pd.errors.ParserError, pd.errors.EmptyDataError):
        def ok(line: str) -> bool:
            f = line.split(",")
            return len(f) == ncol and all(map(_is_int, f))
        raise _scan(path, text, ok, f"{ncol} comma-separated integers", skip=1) from None
    return frame[[c for c in COLUMNS if c in frame.columns]]


def parse_lightgcn(path: str | os.PathLike) -> pd.DataFrame:
    """LightGCN ``train.txt``/``test.txt``: one line per user, ``user item item ...``.

    A line may hold only the user id (no items); such users produce no rows but count towards the id
    range: the largest user id seen is kept in ``frame.attrs["max_user"]``.
    """
    path = Path(path)
    text = _read_text(path)
    lines = text.splitlines()
    # Per line (= per user, not per interaction) we only count tokens; the ints are converted at once.
    tokens_per_line = np.fromiter((len(line.split()) for line in lines), dtype=np.int64, count=len(lines))
    try:
        # numpy reads through int(), which takes any Unicode digit ('٣' as 3); pandas (the other
        # formats) refuses those, so do the same here (a slow check only for a non-ASCII file)
        if not text.isascii() and not all(_INT.fullmatch(t) for t in text.split()):
            raise ValueError("a non-ASCII digit")
        values = np.array(text.split(), dtype=np.int64)
    except (ValueError, OverflowError):
        def ok(line: str) -> bool:
            return all(map(_is_int, line.split()))
        raise _scan(path, text, ok, "whitespace-separated integers 'user item item ...'") from None
    tokens_per_line = tokens_per_line[tokens_per_line > 0]  # blank lines carry nothing
    starts = np.concatenate([[0], np.cumsum(tokens_per_line)[:-1]]).astype(np.int64)
    users = values[starts]
    is_item = np.ones(len(values), dtype=bool)
    is_item[starts] = False
    frame = pd.DataFrame(
        {"user": np.repeat(users, tokens_per_line - 1), "item": values[is_item]}, dtype=np.int64
    )
    frame.attrs["max_user"] = int(users.max()) if len(users) else -1
    return frame


PARSERS: dict[str, Callable[[str | os.PathLike], pd.DataFrame]] = {
    "u.data": parse_udata,
    "ratings.dat": parse_ratings_dat,
    "onebp-csv": parse_onebp_csv,
    "lightgcn": parse_lightgcn,
}


def parse(path: str | os.PathLike, fmt: str) -> pd.DataFrame:
    if fmt not in PARSERS:
        raise UserError(f"unknown format {fmt!r}; known formats: {', '.join(PARSERS)}")
    frame = PARSERS[fmt](path)
    if len(frame) == 0:
        raise UserError(f"{Path(path).name}: no interactions (empty file)")
    if len(frame) and (frame["user"].min() < 0 or frame["item"].min() < 0):
        raise UserError(f"{Path(path).name}: negative user or item id")
    return frame
