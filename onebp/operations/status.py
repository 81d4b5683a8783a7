"""``onebp status results/``: where every run under a folder stands, read from its live files.

One row per run directory (a folder with ``config.json``): dataset, method, seed, protocol, epoch /
max, the best validation value so far (protocol paper without validation: the best *test* value,
labelled), median seconds per epoch, an ETA and the state — ``finished`` (``metrics.json``),
``failed``/``interrupted`` (``run_state.json`` written by ``onebp train`` with the error), ``running``
(its process is alive, or, on another host, ``curve.csv`` changed within the last hour), ``stopped``
(killed: its process is gone) or ``waiting`` (no epoch yet). The ETA counts the epochs left at the
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


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _read_curve(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            return [r for r in csv.DictReader(f) if r.get("epoch")]
    except OSError:
        return []


def _float(value: str | None) -> float | None:
    try:
        v = float(value) if value not in (None, "") else None
    except ValueError:
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
    """The status row of one run directory (see the module docstring)."""
    now = time.time() if now is None else now
    cfg = _read_json(run_dir / "config.json") or {}
    metrics = _read_json(run_dir / "metrics.json")
    marker = _read_json(run_dir / "run_state.json")
    curve = _read_curve(run_dir / "curve.csv")
    epochs = int(cfg.get("epochs", 0) or 0)
    epoch = int(float(curve[-1]["epoch"])) if curve else 0
    select = cfg.get("select_metric", "ndcg@20")
    part = "valid" if any(r.get(f"valid/{select}") for r in curve) else "test"
    scored = [(int(float(r["epoch"])), v) for r in curve if (v := _float(r.get(f"{part}/{select}"))) is not None]
    best_epoch, best = max(scored, key=lambda x: (x[1], -x[0])) if scored else (0, None)
    recent = [v for r in curve[-RECENT_ROWS:] if (v := _float(r.get("seconds_train"))) is not None and int(float(r["epoch"])) > 0]
    evals = [v for r in curve if (v := _float(r.get("seconds_eval"))) is not None]
    s_epoch = statistics.median(recent) if recent else None
    every = max(int(cfg.get("eval_every", 1) or 1), 1)

    if metrics is not None:
        state = "finished"
        epoch = int(metrics.get("epochs_run", epoch) or epoch)
    elif marker is not None and marker.get("state") in ("failed", "interrupted"):
        state = marker["state"]
    elif marker is not None and marker.get("state") == "running":
        if marker.get("host") == socket.gethostname():
            state = "running" if _alive(int(marker.get("pid", -1))) else "stopped"
        else:
            mtime = (run_dir / "curve.csv").stat().st_mtime if (run_dir / "curve.csv").exists() else marker["time"]
            state = "running" if now - mtime < STALE_SECONDS else "stopped"
    else:
        state = "waiting" if not curve else "stopped"

    eta = None
    if state == "running" and s_epoch is not None and epochs:
        last = epochs
        if cfg.get("protocol") == "clean" and best is not None:
            last = min(epochs, max(best_epoch + int(cfg.get("patience_epochs", epochs)), int(cfg.get("min_epochs", 0))))
        per_epoch = s_epoch + (statistics.median(evals) / every if evals else 0.0)
        eta = max(last - epoch, 0) * per_epoch
    return {
        "run_dir": str(run_dir), "dataset": cfg.get("dataset"), "method": cfg.get("method"),
        "seed": cfg.get("seed"), "protocol": cfg.get("protocol"), "trial": bool(cfg.get("tuning_trial")),
        "epoch": epoch, "epochs": epochs, "best": best, "best_epoch": best_epoch or None,
        "best_on": f"{part}/{select}" if best is not None else None, "seconds_per_epoch": s_epoch,
        "eta_seconds": eta, "state": state, "error": (marker or {}).get("error") if state in ("failed", "interrupted") else None,
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
        table.append([str(where), r["dataset"], r["method"] + (" (trial)" if r["trial"] else ""), r["seed"], r["protocol"],
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
