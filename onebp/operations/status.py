"""``onebp status results/``: where every run under a folder stands, read from its live files.

One row per run directory (a folder with ``config.json``): dataset, method, seed, protocol, epoch /
max, the best validation value so far (protocol paper without validation: the best *test* value,
labelled), median seconds per epoch, an ETA and the state — ``finished`` (``metrics.json``),
``failed``/``interrupted`` (``run_state.json`` written by ``onebp train`` with the error), ``running``
(its process is alive, or, on another host, ``curve.csv`` changed within the last hour), ``stopped``
(killed: its process is gone), ``waiting`` (no epoch yet) or ``damaged`` (one of its files is empty,
not JSON or not CSV: named in the row; the rest of the listing goes on). The ETA counts the epochs left at the
recent seconds per epoch plus the evaluations' share; under protocol clean it is an upper bound
(early stopping may end the run sooner) and counts at most to ``best epoch + patience_epochs``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from onebp.errors import UserError

RECENT_ROWS = 20
STALE_SECONDS = 3600.0


class _Damaged(Exception):
    """A run file that is there but cannot be read: the run is listed as damaged, the rest goes on."""


def _read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when the file is absent; ``_Damaged`` when it is there but
    empty, not text, not JSON or not an object (a run directory damaged by hand or by a full disk)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise _Damaged(f"{path.name} is not text") from None
    except OSError as exc:
        raise _Damaged(f"{path.name}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        why = "empty" if not text.strip() else f"not JSON (line {exc.lineno})"
        raise _Damaged(f"{path.name} is {why}") from None
    if not isinstance(data, dict):
        raise _Damaged(f"{path.name} is not a JSON object")
    return data


def _read_curve(path: Path) -> list[dict[str, str]]:
    """The curve's rows with a numeric epoch (the last line of a live run may be half-written)."""
    try:
        with open(path, newline="") as f:
            return [r for r in csv.DictReader(f) if _float(r.get("epoch")) is not None]
    except FileNotFoundError:
        return []
    except (UnicodeDecodeError, csv.Error):
        raise _Damaged(f"{path.name} is not a CSV file") from None
    except OSError as exc:
        raise _Damaged(f"{path.name}: {exc.strerror}") from None


def _number(cfg: dict[str, Any], key: str, default: int) -> int:
    value = cfg.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Damaged(f"config.json: {key} is {value!r}, not a number")
    return int(value)


def _float(value: str | None) -> float | None:
    try:
        v = float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return v if v is not None and math.isfinite(v) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_status(run_dir: Path, now: float | None = None) -> dict[str, Any]:
    """The status row of one run directory (see the module docstring); state ``damaged`` (with the
    file at fault as its error) when one of its files cannot be read."""
    try:
        return _run_status(run_dir, time.time() if now is None else now)
    except _Damaged as exc:
        return {"run_dir": str(run_dir), "dataset": None, "method": None, "seed": None, "protocol": None,
                "trial": False, "epoch": 0, "epochs": 0, "best": None, "best_epoch": None, "best_on": None,
                "seconds_per_epoch": None, "seconds_per_eval": None, "dim": None, "n_negatives": None,
                "eta_seconds": None, "state": "damaged", "error": str(exc)}


def _run_status(run_dir: Path, now: float) -> dict[str, Any]:
    cfg = _read_json(run_dir / "config.json") or {}
    metrics = _read_json(run_dir / "metrics.json")
    marker = _read_json(run_dir / "run_state.json")
    curve = _read_curve(run_dir / "curve.csv")
    epochs = _number(cfg, "epochs", 0)
    epoch = int(float(curve[-1]["epoch"])) if curve else 0
    select = str(cfg.get("select_metric") or "ndcg@20")
    part = "valid" if any(r.get(f"valid/{select}") for r in curve) else "test"
    scored = [(int(float(r["epoch"])), v) for r in curve if (v := _float(r.get(f"{part}/{select}"))) is not None]
    best_epoch, best = max(scored, key=lambda x: (x[1], -x[0])) if scored else (0, None)
    recent = [v for r in curve[-RECENT_ROWS:] if (v := _float(r.get("seconds_train"))) is not None and int(float(r["epoch"])) > 0]
    evals = [v for r in curve if (v := _float(r.get("seconds_eval"))) is not None]
    s_epoch = statistics.median(recent) if recent else None
    every = max(_number(cfg, "eval_every", 1), 1)

    if metrics is not None:
        state = "finished"
        run = _float(metrics.get("epochs_run"))
        epoch = int(run) if run else epoch
    elif marker is not None and marker.get("state") in ("failed", "interrupted"):
        state = marker["state"]
    elif marker is not None and marker.get("state") == "running":
        pid = _float(marker.get("pid"))
        if marker.get("host") == socket.gethostname():
            state = "running" if pid is not None and pid > 0 and _alive(int(pid)) else "stopped"
        else:
            mtime = (run_dir / "curve.csv").stat().st_mtime if (run_dir / "curve.csv").exists() else (
                _float(marker.get("time")) or 0.0)
            state = "running" if now - mtime < STALE_SECONDS else "stopped"
    else:
        state = "waiting" if not curve else "stopped"

    eta = None
    if state == "running" and s_epoch is not None and epochs:
        last = epochs
        if cfg.get("protocol") == "clean" and best is not None:
            last = min(epochs, max(best_epoch + _number(cfg, "patience_epochs", epochs), _number(cfg, "min_epochs", 0)))
        per_epoch = s_epoch + (statistics.median(evals) / every if evals else 0.0)
        eta = max(last - epoch, 0) * per_epoch
    return {
        "run_dir": str(run_dir), "dataset": cfg.get("dataset"), "method": cfg.get("method"),
        "seed": cfg.get("seed"), "protocol": cfg.get("protocol"), "trial": bool(cfg.get("tuning_trial")),
        "epoch": epoch, "epochs": epochs, "best": best, "best_epoch": best_epoch or None,
        "best_on": f"{part}/{select}" if best is not None else None, "seconds_per_epoch": s_epoch,
        "seconds_per_eval": statistics.median(evals) if evals else None,
        "dim": cfg.get("dim"), "n_negatives": cfg.get("n_negatives"),
        "eta_seconds": eta, "state": state,
        "error": str((marker or {}).get("error")) if state in ("failed", "interrupted") else None,
    }


def find_run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("config.json")
                  if any((p.parent / f).exists() for f in ("curve.csv", "metrics.json", "run_state.json",
                                                           "checkpoint.pt")))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def render(rows: list[dict[str, Any]], root: Path | None = None) -> str:
    from tabulate import tabulate

    table = []
    for r in rows:
        where = Path(r["run_dir"])
        where = where.relative_to(root) if root is not None and where.is_relative_to(root) else where
        best = "" if r["best"] is None else f"{r['best']:.4f} @ {r['best_epoch']}" + (
            " (test)" if r["best_on"] and r["best_on"].startswith("test/") else "")
        table.append([str(where), r["dataset"], f"{r['method'] or ''}{' (trial)' if r['trial'] else ''}", r["seed"],
                      r["protocol"],
                      f"{r['epoch']}/{r['epochs']}", best,
                      "" if r["seconds_per_epoch"] is None else f"{r['seconds_per_epoch']:.3g}",
                      ("≤ " if r["protocol"] == "clean" and r["eta_seconds"] else "") + _duration(r["eta_seconds"]),
                      r["state"] + (f": {r['error'][:60]}" if r["error"] else "")])
    counts = {s: sum(r["state"] == s for r in rows) for s in dict.fromkeys(r["state"] for r in rows)}
    head = ["run", "dataset", "method", "seed", "protocol", "epoch", "best so far", "s/epoch", "ETA", "state"]
    return tabulate(table, head, tablefmt="github") + "\n" + ", ".join(f"{n} {s}" for s, n in counts.items())


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="list the runs under a folder: epoch, best so far, s/epoch, ETA, state")
    p.add_argument("root", nargs="?", default="results", help="folder to search (default: results)")
    p.add_argument("--json", action="store_true", help="one JSON object per run instead of a table")
    p.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    root = Path(args.root)
    if not root.is_dir():
        raise UserError(f"{root}: not a directory")
    rows = [run_status(d) for d in find_run_dirs(root)]
    if args.json:
        for r in rows:
            print(json.dumps(r))
    elif not rows:
        print(f"{root}: no run directories (config.json with a curve, checkpoint or metrics)", file=sys.stderr)
    else:
        print(render(rows, root))
    return 0
