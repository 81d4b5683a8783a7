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
        return int(json.loads(cfg.read_text()).get("eval_every", 1))
    except FileNotFoundError:
        raise UserError(f"{cfg}: missing — the run's resolved settings (is its directory complete?)") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{cfg}: not valid JSON ({exc})") from None
