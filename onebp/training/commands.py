"""``onebp train`` and ``onebp bench``: run a method on a prepared split."""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from onebp.atomic import atomic_write, atomic_write_json
from onebp.config import TrainConfig, parse_assignments, resolve_config, settings_help
from onebp.data.split_format import load_split
from onebp.errors import UserError
from onebp.methods.registry import discover, get_method, method_names
from onebp.training.split_fingerprint import SplitFingerprint

# torch, numpy and the trainer are imported inside the handlers: `onebp data ...` never needs them.


def register(sub: argparse._SubParsersAction) -> None:
    for name, func, help_ in (
        ("train", cmd_train, "train a method on a split and write a run directory"),
        ("bench", cmd_bench, "time a few epochs and evaluations; print one JSON line"),
    ):
        # the shared settings, grouped by section with a line each, close at hand in `--help`
        p = sub.add_parser(name, help=help_, epilog=settings_help(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--data", required=True, help="prepared split directory")
        p.add_argument("--method", required=True, help="method name (see `onebp methods`)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a setting (repeatable)")
        p.add_argument("--params-file", metavar="JSON",
                       help="settings from a JSON object, or a tuning's best.json (its params); "
                            "applied before --set")
        p.add_argument("--baselines", action="append", default=[], metavar="DIR",
                       help="also load method modules from DIR (repeatable; env ONEBP_BASELINES too)")
        if name == "train":
            p.add_argument("--out", required=True, help="run directory (resumed if it has a checkpoint)")
            p.add_argument("--fresh", action="store_true",
                           help="start over: delete the run directory's checkpoint, best model, curve and "
                                "metrics first (a checkpoint of other code or another device is refused otherwise)")
        else:
            p.add_argument("--epochs", type=int, default=10, help="timed epochs")
            p.add_argument("--evals", type=int, default=10, help="timed full evaluations")
            p.add_argument("--warmup", type=int, default=2, help="untimed epochs first")
        p.set_defaults(func=func)
    p = sub.add_parser("methods", help="list the registered methods")
    p.add_argument("--baselines", action="append", default=[], metavar="DIR")
    p.set_defaults(func=cmd_methods)


def cmd_methods(args: argparse.Namespace) -> int:
    discover(args.baselines)
    for name in method_names():
        m = get_method(name)
        print(f"{name}\t{m.summary}")
    return 0


def read_params_file(path: str | Path, method: str | None = None) -> dict[str, Any]:
    """Settings from a JSON file: a tuning ``best.json`` (its ``params``) or a plain object. With
    ``method``, a best.json tuned for another method is refused (its settings would be applied to a
    method they were not chosen for, silently)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        # the exception text would show raw bytes; say what is wrong in words instead
        raise UserError(f"--params-file {path}: not a UTF-8 text file") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"--params-file {path}: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("params"), dict):
        tuned_for = data.get("method")
        if method is not None and tuned_for is not None and tuned_for != method:
            raise UserError(f"--params-file {path}: settings tuned for method {tuned_for!r}, "
                            f"but --method is {method!r}")
        data = data["params"]
    if not isinstance(data, dict):
        raise UserError(f"--params-file {path}: expected a JSON object of settings (or a best.json)")
    return data


def _config(args: argparse.Namespace, split_name: str) -> tuple[Any, TrainConfig]:
    discover(args.baselines)
    method = get_method(args.method)
    overrides: dict[str, Any] = {}
    sources: dict[str, str] = {}  # key → where its value came from, for the errors
    if getattr(args, "params_file", None):
        overrides.update(read_params_file(args.params_file, method.name))
        sources = dict.fromkeys(overrides, f"--params-file {args.params_file}")
    assigned = parse_assignments(args.set)
    overrides.update(assigned)
    for key in assigned:  # --set wins over the file, and so names itself
        sources.pop(key, None)
    cfg = resolve_config(method.name, method.params, method.defaults, split_name, overrides,
                         onebp_update=method.onebp_update, sources=sources)
    return method, cfg


def environment(device: Any) -> dict[str, Any]:
    """Where and with what a run ran: git revision, package versions, device, threads."""
    import torch

    repo = Path(__file__).resolve().parent.parent.parent

    def git(*cmd: str) -> str | None:
        try:
            return subprocess.run(["git", *cmd], cwd=repo, capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    versions = {}
    for pkg in ("onebp-bench", "torch", "numpy", "pandas", "scipy", "snakemake"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_revision": git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "packages": versions,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "hostname": socket.gethostname(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_curve(path: Path, rows: list[dict[str, Any]]) -> None:
    from onebp.training.curve_log import write_curve as write

    write(path, rows)


RUN_STATE = "run_state.json"  # running (pid, host) or failed (error); deleted when the run finishes


def _mark(out: Path, state: str, **extra: Any) -> None:
    atomic_write_json(out / RUN_STATE, {"state": state, "pid": os.getpid(), "host": socket.gethostname(),
                                        "time": time.time(), **extra})


def cmd_train(args: argparse.Namespace) -> int:
    from onebp.training.run_lock import RunLock
    from onebp.training.split_fingerprint import split_fingerprint
    from onebp.training.trainer import check_protocol

    split = load_split(args.data)
    method, cfg = _config(args, split.name)
    check_protocol(cfg, split)  # an empty test part or no validation part: refused before any write
    data = split_fingerprint(args.data)  # once per run: which data this run trains on
    out = Path(args.out)
    if (out / "meta.json").exists():  # checked before the lock, whose file would be the first write
        raise UserError(f"--out {out}: is a prepared split directory (has meta.json); run files would be "
                        "written into it — use another --out directory")
    # The run directory's lock comes before anything in it is written or deleted (--fresh
    # included): a second `onebp train` on a directory in use is refused with the first run's files
    # untouched. The kernel releases it when this process ends, however it ends.
    with RunLock(out):
        return _train_locked(args, out, split, method, cfg, data)


def _train_locked(args: argparse.Namespace, out: Path, split: Any, method: Any, cfg: TrainConfig,
                  data: SplitFingerprint) -> int:
    import numpy as np

    from onebp.training.trainer import Trainer, TrainingDiverged, count_batches

    fresh = getattr(args, "fresh", False)
    if not fresh and (out / "metrics.json").exists():
        _check_finished_run(out, cfg, data)
        print(f"{out}: already finished (metrics.json present); nothing to do", file=sys.stderr)
        return 0
    # Everything that can refuse this run does so here, before the first write or delete (--fresh's
    # included), so a refused `onebp train` leaves the directory exactly as it was.
    trainer = Trainer(method, cfg, split, run_dir=out)  # may refuse the device or the data
    trainer.checkpoints.split = data  # recorded in the checkpoint; a resume on other data is refused
    if trainer.model.iterative:
        count_batches(len(trainer.data.train_users), cfg)  # else refused at the first epoch, inside fit()
        if not fresh:
            # The checkpoint's own checks (code, device type, settings, split, best-model file), as
            # fit() makes them when it resumes: run now, they refuse before config.json, env.json
            # and run_state.json would record settings the checkpoint contradicts. Loading the same
            # checkpoint again in fit() restores the same state: no number changes.
            trainer.checkpoints.resume(trainer.model, trainer.generator)
    if fresh:
        trainer.checkpoints.discard()
        for name in ("metrics.json", "curve.csv", "per_user_test.npz", RUN_STATE):
            (out / name).unlink(missing_ok=True)
        print(f"{out}: --fresh: previous checkpoint, best model, curve and metrics deleted", file=sys.stderr)
    atomic_write_json(out / "config.json", {**cfg.to_dict(), "data": data.source,
                                            "split_fingerprint": data.digest, "split": split.name,
                                            "citation": method.citation, "derived_seeds": trainer.seeds})
    atomic_write_json(out / "env.json", environment(trainer.device))
    _mark(out, "running")
    try:
        metrics = trainer.fit()
    except TrainingDiverged as exc:
        if not cfg.tuning_trial:
            _mark(out, "failed", error=str(exc))
            raise
        # A drawn setting that diverges is a result of tuning (a bad point), not a failed job.
        metrics = {"method": cfg.method, "dataset": cfg.dataset, "seed": cfg.seed, "tuning_trial": True,
                   "status": "diverged", "error": str(exc), "epochs_run": trainer.state.epoch, "valid": {}}
    except BaseException as exc:  # recorded for `onebp status`, then raised as before
        _mark(out, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
              error=f"{type(exc).__name__}: {exc}")
        raise
    write_curve(out / "curve.csv", trainer.state.curve)
    if cfg.tuning_trial:  # no test metrics exist for a trial
        atomic_write_json(out / "metrics.json", metrics)
        # A finished trial is never resumed, and its checkpoint (model and optimizer state) and best
        # model would be the largest files of a tuning: hundreds of MB per trial at dim 1024.
        from onebp.training.checkpoint import Checkpointer

        Checkpointer(out, cfg).discard()
        (out / RUN_STATE).unlink(missing_ok=True)
        print(json.dumps({"out": str(out), "tuning_trial": True, "status": metrics.get("status", "ok"),
                          "selected_epoch": metrics.get("selected_epoch"),
                          f"valid/{cfg.select_metric}": metrics["valid"].get(cfg.select_metric)}))
        return 0
    test = trainer.test_metrics
    buf = io.BytesIO()
    np.savez_compressed(buf, user=test.users, **test.per_user)
    atomic_write(out / "per_user_test.npz", buf.getvalue())
    atomic_write_json(out / "metrics.json", metrics)
    (out / RUN_STATE).unlink(missing_ok=True)
    print(json.dumps({"out": str(out), "protocol": cfg.protocol, "selected_epoch": metrics["selected_epoch"],
                      "test": {k: round(v, 4) for k, v in metrics["test"].items() if k.endswith("@20")}}))
    return 0


def _check_finished_run(out: Path, cfg: TrainConfig, data: SplitFingerprint) -> None:
    from onebp.training.checkpoint import NON_RESULT_KEYS

    try:
        old = json.loads((out / "config.json").read_text())
        if not isinstance(old, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise UserError(f"{out}: has metrics.json but no readable config.json ({exc})") from None
    diff = sorted(k for k, v in cfg.to_dict().items() if k not in NON_RESULT_KEYS and old.get(k) != v)
    if diff:
        raise UserError(f"{out}: finished run with different settings ({', '.join(diff)}); "
                        "use a new --out directory")
    again = "use --fresh to train again on this split, or another --out directory"
    recorded = old.get("split_fingerprint")
    if recorded is None:
        # Finished before runs recorded a fingerprint: the split directory's path is its only
        # record of the data. The same path is accepted (refusing would turn every older finished
        # run into a rerun without any evidence against it); another path is refused, since it
        # may be another split of the same dataset name.
        if old.get("data") != data.source:
            raise UserError(f"{out}: finished on split {old.get('data')} ({out / 'config.json'} predates split "
                            f"fingerprints), but --data is {data.source}; {again}")
    elif recorded != data.digest:
        short = str(recorded).removeprefix("sha256:")[:12]
        raise UserError(f"{out}: finished on split {old.get('data')} (fingerprint {short} in "
                        f"{out / 'config.json'}), but --data {data.source} has fingerprint {data.short}; {again}")


def cmd_bench(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from onebp.training.trainer import Trainer, peak_memory_mb

    for flag, value, least in (("--epochs", args.epochs, 1), ("--evals", args.evals, 1), ("--warmup", args.warmup, 0)):
        if value < least:  # --epochs 0 / --evals 0: a median of nothing
            raise UserError(f"{flag} {value}: must be at least {least}")
    split = load_split(args.data)
    method, cfg = _config(args, split.name)
    trainer = Trainer(method, cfg, split, run_dir=None, log=lambda msg: None)
    # Wall time is what users see; process CPU time is also reported because on a shared machine
    # it is the steadier figure (with threads=1 they agree when the machine is otherwise idle).
    # The timed epochs run unprofiled (CUDA events, no synchronisation inside the epoch); the phase
    # breakdown comes from a few extra epochs with profile_phases on (synchronised at every phase
    # boundary, so on a GPU their sum exceeds the unprofiled epoch).
    phases: dict[str, list[float]] = {}
    epoch_cpu = []
    n_profiled = min(args.epochs, 3)
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(trainer.device)
    for i in range(args.warmup + args.epochs + n_profiled):
        profiled = i >= args.warmup + args.epochs
        trainer.timer.enabled = profiled or cfg.profile_phases
        cpu = time.process_time()
        row = trainer.run_epoch()
        cpu = time.process_time() - cpu
        trainer.state.epoch = row["epoch"]
        if args.warmup <= i < args.warmup + args.epochs:
            epoch_cpu.append(cpu)
            phases.setdefault("seconds_train", []).append(row["seconds_train"])
        elif profiled:
            for k, v in row.items():
                if k.startswith("seconds_") and k != "seconds_train":
                    phases.setdefault(k, []).append(v)
    # Training's peak before any evaluation: RSS is the process's high-water mark so far (loading +
    # training); the GPU counter is reset so the evaluation's own peak is measured apart.
    rss_train, gpu_train = peak_memory_mb(trainer.device)
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(trainer.device)
    evals, eval_cpu = [], []
    part = "valid" if split.has_valid else "test"
    trainer.evaluate(part)  # warm-up
    for _ in range(args.evals):
        t, cpu = time.perf_counter(), time.process_time()
        trainer.evaluate(part)  # reads its metrics back to the host: the GPU is done when it returns
        evals.append(time.perf_counter() - t)
        eval_cpu.append(time.process_time() - cpu)
    rss, gpu = peak_memory_mb(trainer.device)  # rss: whole process; gpu: evaluation only (reset above)
    if gpu is not None and gpu_train is not None:
        gpu_all = max(gpu, gpu_train)
    else:
        gpu_all = gpu
    epoch = float(np.median(phases["seconds_train"]))
    n_train = len(split.part("train"))
    print(json.dumps({
        "method": cfg.method, "data": split.name, "device": str(trainer.device),
        "device_name": environment(trainer.device)["device_name"], "threads": torch.get_num_threads(),
        "dim": cfg.dim, "epochs_timed": args.epochs, "evals_timed": args.evals,
        "epoch_seconds_median": round(epoch, 5),
        "epoch_seconds_min": round(min(phases["seconds_train"]), 5),
        "phase_seconds_median": {k.removeprefix("seconds_"): round(float(np.median(v)), 5)
                                 for k, v in phases.items() if k != "seconds_train"},
        "phase_epochs_profiled": n_profiled,
        "epoch_cpu_seconds_median": round(float(np.median(epoch_cpu)), 5),
        "eval_seconds_median": round(float(np.median(evals)), 5),
        "eval_cpu_seconds_median": round(float(np.median(eval_cpu)), 5),
        "eval_part": part,
        "interactions_per_second": round(n_train / epoch),
        "peak_rss_mb": round(rss, 1), "peak_gpu_mb": None if gpu_all is None else round(gpu_all, 1),
        "peak_rss_train_mb": round(rss_train, 1),
        "peak_gpu_train_mb": None if gpu_train is None else round(gpu_train, 1),
        "peak_gpu_eval_mb": None if gpu is None else round(gpu, 1),
    }))
    return 0
