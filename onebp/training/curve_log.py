"""``curve.csv``: one row per epoch, appended and flushed at every evaluation while a run trains, so
``onebp status`` and a human with ``tail`` see progress live.

It stays consistent with resume: the resume checkpoint holds the curve up to its epoch, and a resumed
run first rewrites ``curve.csv`` from it (atomically) — rows the killed run appended after its last
checkpoint are dropped and trained again, so no row is duplicated or missing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from onebp.atomic import atomic_write
from onebp.config import METRIC_NAMES, TrainConfig

FIXED = ["epoch", "loss", "seconds_train", "seconds_eval", "seconds_sample", "seconds_prepare", "seconds_step",
         "seconds_aggregate", "peak_rss_mb", "peak_gpu_mb", "peak_gpu_eval_mb"]


def curve_columns(cfg: TrainConfig | None = None, has_valid: bool = True,
                  rows: Sequence[dict[str, Any]] = ()) -> list[str]:
    """The fixed columns, then every metric column the run will write (from its settings) and any
    other key the rows hold, sorted."""
    extra: set[str] = {k for r in rows for k in r} - set(FIXED)
    if cfg is not None:
        parts = (["valid"] if has_valid else []) + (["test"] if cfg.protocol == "paper" else [])
        extra |= {f"{p}/{m}@{k}" for p in parts for m in METRIC_NAMES for k in cfg.ks}
    return FIXED + sorted(extra)


def _csv(rows: Sequence[dict[str, Any]], columns: list[str], header: bool) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="")
    if header:
        writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()


def write_curve(path: str | Path, rows: Sequence[dict[str, Any]], columns: list[str] | None = None) -> None:
    """The whole curve, written atomically."""
    atomic_write(path, _csv(rows, columns or curve_columns(rows=rows), header=True))


class CurveLog:
    """Appends a run's curve rows to ``path`` (None: keeps nothing)."""

    def __init__(self, path: Path | None, columns: list[str]) -> None:
        self.path, self.columns, self.written = path, list(columns), 0

    def start(self, rows: Sequence[dict[str, Any]]) -> None:
        """(Re)write the file with ``rows`` — none for a new run, the checkpoint's for a resumed one."""
        if self.path is None:
            return
        self._widen(rows)
        write_curve(self.path, rows, self.columns)
        self.written = len(rows)

    def sync(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append the rows not written yet and flush; a row with a column the header lacks rewrites
        the file with a wider header."""
        if self.path is None or self.written >= len(rows):
            return
        new = rows[self.written:]
        if self._widen(new):
            write_curve(self.path, rows, self.columns)
        else:
            with open(self.path, "a", newline="") as f:
                f.write(_csv(new, self.columns, header=False))
                f.flush()
        self.written = len(rows)

    def _widen(self, rows: Sequence[dict[str, Any]]) -> bool:
        """Add columns the rows hold and the header lacks; True if there were any."""
        missing = {k for r in rows for k in r} - set(self.columns)
        if missing:
            self.columns = FIXED + sorted((set(self.columns) | missing) - set(FIXED))
        return bool(missing)
