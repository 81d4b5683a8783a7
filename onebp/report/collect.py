"""Build the long results table from run directories (``onebp report collect``).

One row per (run, split, metric, k): columns ``dataset, method, setting, seed, protocol, split,
metric, k, value, run_dir``. Splits are ``valid``, ``test`` and ``best_on_test`` (metric values),
plus ``timing``, ``memory`` and ``train`` (efficiency and bookkeeping, with the epoch-cap rule's
``epochs_cap``, ``cap_bound`` 1/0/NaN = unknown, ``cap_gain``, ``cap_noise``; ``k`` empty) so that every
table is derived from this one file and every number points back to a run on disk.
A second file, ``runs.csv``, has one row per run with its resolved config (JSON) for sweeps.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from onebp.errors import UserError
from onebp.report.layout import check_rows_complete, setting_of

COLUMNS = ["dataset", "method", "setting", "seed", "protocol", "split", "metric", "k", "value", "run_dir"]
METRIC_SPLITS = ("valid", "test", "best_on_test")


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UserError(f"{path}: missing (is the run finished?)") from exc
    except UnicodeDecodeError:
        # the decoder's message shows raw bytes and no file name
        raise UserError(f"{path}: not a UTF-8 text file (a run directory's {path.name})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from exc
    except OSError as exc:  # a directory in the file's place, unreadable, ...
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not isinstance(data, dict):
        # a list would be written into runs.csv (config) or fail on the first key (metrics)
        raise UserError(f"{path}: not a JSON object (a run directory's {path.name})")
    return data


#: the metrics.json keys every results row is labelled with
_RUN_KEYS = ("dataset", "method", "seed", "protocol")


def run_rows(run_dir: str | Path) -> list[dict]:
    run_dir = Path(run_dir)
    m = _load_json(run_dir / "metrics.json")
    missing = [k for k in _RUN_KEYS if k not in m]
    if missing:
        raise UserError(f"{run_dir / 'metrics.json'}: no {', '.join(missing)} (not a run's metrics.json)")
    base = {
        "dataset": m["dataset"],
        "method": m["method"],
        "setting": setting_of(run_dir),
        "seed": int(m["seed"]),
        "protocol": m["protocol"],
        "run_dir": str(run_dir),
    }
    rows = []
    for split in METRIC_SPLITS:
        for key, value in (m.get(split) or {}).items():
            metric, _, k = key.partition("@")
            rows.append({**base, "split": split, "metric": metric, "k": int(k) if k else None, "value": value})
    extra = {
        "timing": m.get("timing") or {},
        "memory": m.get("memory") or {},
        "train": {k: m[k] for k in ("selected_epoch", "epochs_run", "stopped_early") if k in m},
    }
    if "epochs_run" in m:  # the epoch-cap rule's per-run columns (onebp.report.epoch_cap.CAP_RULE)
        from onebp.report.epoch_cap import cap_values, run_cap

        extra["train"].update(cap_values(run_cap(run_dir, m)))
    for split, values in extra.items():
        for metric, value in values.items():
            v = float(value) if value is not None else None
            rows.append({**base, "split": split, "metric": metric, "k": None, "value": v})
    return rows


def run_dir_of(path: str | Path) -> Path:
    """A run directory, given the directory or its ``metrics.json`` (what the workflow declares and
    passes: under a storage plugin that file's local copy is the only place the run is found; its
    ``config.json``, declared too, lies next to it)."""
    path = Path(path)
    return path.parent if path.name == "metrics.json" else path


def collect(run_dirs: Iterable[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long results table, one row per run); each item a run directory or its ``metrics.json``."""
    rows, runs = [], []
    for d in run_dirs:
        d = run_dir_of(d)
        if not d.is_dir():
            # checked here so a file is named as such, not as "<file>/metrics.json: missing"
            what = "no such directory" if not d.exists() else "not a directory"
            raise UserError(f"{d}: {what} (expected a run directory or its metrics.json)")
        rows.extend(run_rows(d))
        cfg = _load_json(d / "config.json")
        m = _load_json(d / "metrics.json")
        runs.append(
            {
                "run_dir": str(d),
                "dataset": m["dataset"],
                "method": m["method"],
                "setting": setting_of(d),
                "seed": int(m["seed"]),
                "protocol": m["protocol"],
                "device": m.get("device"),
                "config": json.dumps(cfg, sort_keys=True),
            }
        )
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["k"] = df["k"].astype("Int64")
    return df, pd.DataFrame(runs)


def find_runs(root: str | Path) -> list[Path]:
    """Every finished run (``metrics.json`` present) under ``root``; tuning trials (no test metrics,
    ``results/tuning/...``) are not runs of the study and are left out. UserError when ``root`` is
    not a directory: collecting nothing from a mistyped path would pass silently."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--root {root}: {'not a directory' if root.exists() else 'no such directory'}")
    return sorted(p.parent for p in root.rglob("metrics.json") if not _load_json(p).get("tuning_trial"))


def cut_last_row(path: str | Path) -> int | None:
    """The line of ``path``'s last row when it was cut (the file still being written, or truncated):
    it has fewer fields than the header, or the file does not end with a line end (a cut inside the
    last field leaves every field there, the value perhaps shortened). None when the last row is whole."""
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    reader = csv.reader(text.splitlines(keepends=True))
    width = len(next(reader, []))
    last, line = None, None
    for row in reader:
        if row:
            last, line = row, reader.line_num
    if last is None:
        return None
    return line if len(last) < width or not text.endswith(("\n", "\r")) else None


def load_results(path: str | Path, *, partial_ok: bool = False) -> pd.DataFrame:
    """The long results table at ``path``; UserError naming the file (and row) when it is missing, a
    directory, empty, not CSV, lacks a column, has a row cut short (fields lost), has no rows, or has a
    ``k``/``value`` that is not a number. ``partial_ok``: a rerun's table, possibly still being written,
    whose missing rows or cut last row are the comparison's to report (it then counts as disagreeing;
    the cut row is left out and its line is ``attrs["cut_line"]``)."""
    if Path(path).is_dir():
        raise UserError(f"{path}: a directory, not a results table (give its results.csv)")
    try:
        df = pd.read_csv(path, dtype={"setting": str, "metric": str, "split": str})
    except FileNotFoundError:
        raise UserError(f"{path}: no such results table") from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: empty, not a results table (write one with `onebp report collect`)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise UserError(f"{path}: not a results table: {str(exc).strip().splitlines()[0]}") from None
    missing = [c for c in COLUMNS if c not in df.columns and c != "run_dir"]
    if missing:
        raise UserError(f"{path}: not a results table, no column {', '.join(missing)}")
    if not partial_ok:
        if df.empty:
            raise UserError(f"{path}: a header and no rows: no results (write one with `onebp report collect`)")
        check_rows_complete(path)
    if partial_ok and len(df):
        # A rerun's cut last row (its k or value perhaps cut short, e.g. "1.2e-") is set aside, its line
        # kept in ``attrs["cut_line"]``: the comparison reports the table incomplete (exit 1), not
        # unreadable (exit 2).
        cut = cut_last_row(path)
        if cut is not None:
            df = df.iloc[:-1].copy()
            df.attrs["cut_line"] = cut
    for col in ("k", "value"):
        num = pd.to_numeric(df[col], errors="coerce")
        bad = num.isna() & df[col].notna()
        if col == "k":
            bad |= num.notna() & (num != num.round())
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise UserError(f"{path}:{row + 2}: {col} {df[col].iloc[row]!r} is not a number")
        df[col] = num
    df["k"] = df["k"].astype("Int64")
    return df
