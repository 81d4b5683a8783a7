"""Where runs live on disk, and what a run directory's path says about it.

The workflow writes every run to ``<root>/runs/<dataset>/<method>/<setting>/<protocol>/seed<seed>``.
``<setting>`` is ``<tag>-<hash>``: ``tag`` is ``main`` (the configured hyper-parameters) or
``<param>=<value>`` (a point of a sweep), ``hash`` a short stable hash of the resolved overrides, so
a changed hyper-parameter gets a new directory and a rerun of only what depends on it.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from onebp.errors import UserError

MAIN = "main"


def setting_hash(overrides: dict[str, Any], n: int = 8) -> str:
    """Short, stable across runs and platforms (sorted JSON of the resolved overrides)."""
    blob = json.dumps(overrides, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:n]


def _clean(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._+=-]", "_", str(value))


def setting_id(overrides: dict[str, Any], tag: str = MAIN) -> str:
    return f"{_clean(tag)}-{setting_hash(overrides)}"


def sweep_tag(param: str, value: Any) -> str:
    return f"{_clean(param)}={_clean(value)}"


def setting_tag(setting: str) -> str:
    """``main-1a2b3c4d`` → ``main``; ``beta=0.9-1a2b3c4d`` → ``beta=0.9``."""
    return setting.rsplit("-", 1)[0] if "-" in setting else setting


def setting_of(run_dir: str | Path) -> str:
    """The ``<setting>`` path component of a run directory (``main`` for other layouts)."""
    parts = Path(run_dir).parts
    if len(parts) >= 3 and re.fullmatch(r"seed\d+", parts[-1]):
        return parts[-3]
    return MAIN


def run_eval_every(run_dir: str | Path) -> int:
    """A finished run's ``eval_every``, from its resolved settings (``config.json``)."""
    cfg = Path(run_dir) / "config.json"
    try:
        settings = json.loads(cfg.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{cfg}: missing — the run's resolved settings (is its directory complete?)") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{cfg}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{cfg}: not valid JSON ({exc})") from None
    if not isinstance(settings, dict):
        raise UserError(f"{cfg}: expected a JSON object")
    value = settings.get("eval_every", 1)
    # bool is an int subclass: 'true' is a damaged file, not eval_every 1
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UserError(f"{cfg}: expected an object whose eval_every is a positive integer, got {value!r}")
    return value


#: the columns of runs.csv (``onebp report collect --runs-out``) the sweeps read
RUNS_COLUMNS = ("run_dir", "config")


def load_runs(path: str | Path) -> Any:
    """runs.csv (one row per run, written by ``onebp report collect --runs-out``) as a DataFrame;
    UserError naming the file (and line) when it is missing, a directory, empty, not UTF-8 CSV,
    lacks a column, has a row cut short, or has no runs."""
    import csv

    import pandas as pd  # here: the rest of this module is read by light commands too

    p = Path(path)
    if p.is_dir():
        raise UserError(f"{p}: a directory, not runs.csv (give the file `onebp report collect --runs-out` wrote)")
    try:
        runs = pd.read_csv(p, dtype={"setting": str})
        check_rows_complete(p)
    except FileNotFoundError:
        raise UserError(f"{p}: no such runs.csv (write it with `onebp report collect --runs-out`)") from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{p}: empty, not runs.csv (write it with `onebp report collect --runs-out`)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error, ValueError, OSError) as exc:
        raise UserError(f"{p}: not runs.csv: {str(exc).strip().splitlines()[0]}") from None
    missing = [c for c in RUNS_COLUMNS if c not in runs.columns]
    if missing:
        raise UserError(f"{p}: not runs.csv, no column {', '.join(missing)}")
    if runs.empty:
        raise UserError(f"{p}: a header and no runs (write it with `onebp report collect --runs-out`)")
    return runs


def check_rows_complete(path: str | Path) -> None:
    """UserError naming the line of the first row with fewer fields than the header: pandas fills
    the lost fields with NaN, so a file cut mid-row would otherwise read as a run whose value is NaN."""
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        width = len(next(reader, []))
        for row in reader:
            if row and len(row) < width:
                raise UserError(f"{path}:{reader.line_num}: row cut short ({len(row)} of {width} fields; "
                                "was the file truncated?)")
