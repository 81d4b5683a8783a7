"""GPU slots: give each training job its own device through one ``flock`` lock file per GPU.

Snakemake's ``gpu`` resource only *counts* jobs; it does not say which device a job should use.
``onebp gpu-run -- CMD ...`` picks a free device by taking a non-blocking exclusive lock on
``<slots-dir>/gpu-<id>.lock`` (trying every device in turn, polling while all are taken), sets
``CUDA_VISIBLE_DEVICES=<id>`` and then *execs* CMD. The locked file descriptor is inherited
across ``exec``, so the lock lives exactly as long as the job: the kernel releases it when the
process dies, even on SIGKILL, and no stale lock files need cleaning up.

Because the lock, not the resource count, is what decides the device, a user who forgets
``--resources gpu=N`` still never gets two jobs on one GPU: extra jobs simply wait for a slot.

Where a scheduler already assigned devices (SLURM: ``SLURM_JOB_ID``; Kubernetes:
``KUBERNETES_SERVICE_HOST``) the environment is kept as is: inside a SLURM cgroup every job may
see its GPU as device 0, so node-local locks would serialise jobs that do not share anything.
Outside a scheduler, a ``CUDA_VISIBLE_DEVICES`` the user set narrows the pool of devices to lock.
No GPU at all: ``CUDA_VISIBLE_DEVICES=""`` and the job runs on the CPU with the same outputs.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from onebp.errors import UserError

SCHEDULER_MARKERS = ("SLURM_JOB_ID", "KUBERNETES_SERVICE_HOST")


def default_slots_dir() -> Path:
    """Node-local (GPUs are node-local), per user (lock files must be writable by the user)."""
    env = os.environ.get("ONEBP_GPU_SLOTS_DIR")
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / f"onebp-gpu-slots-{os.getuid()}"


def _parse_devices(value: str) -> list[str]:
    return [d.strip() for d in value.split(",") if d.strip() and d.strip() != "-1"]


def detect_gpus() -> list[str]:
    """Device ids on this machine: ``nvidia-smi -L``, else ``torch.cuda.device_count()``."""
    exe = shutil.which("nvidia-smi")
    if exe:
        try:
            out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            out = None
        if out is not None and out.returncode == 0:
            return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]
    try:
        import torch  # only reached without nvidia-smi; keeps the common path fast
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())]


@dataclass(frozen=True)
class DevicePolicy:
    """What to do before exec: ``mode`` is ``scheduler`` (keep env), ``cpu`` or ``slots``."""

    mode: str
    devices: tuple[str, ...] = ()


def device_policy(env: Mapping[str, str]) -> DevicePolicy:
    if any(env.get(m) for m in SCHEDULER_MARKERS):
        return DevicePolicy("scheduler")
    if "ONEBP_GPUS" in env:  # explicit device list (tests, or to reserve GPUs for others)
        devices = _parse_devices(env["ONEBP_GPUS"])
    elif "CUDA_VISIBLE_DEVICES" in env:
        devices = _parse_devices(env["CUDA_VISIBLE_DEVICES"])
    else:
        devices = detect_gpus()
    return DevicePolicy("slots", tuple(devices)) if devices else DevicePolicy("cpu")


class Slot:
    """A held lock on one device; the file descriptor is the lock."""

    def __init__(self, device: str, fd: int, path: Path):
        self.device, self.fd, self.path = device, fd, path

    def release(self) -> None:
        os.close(self.fd)


def try_acquire(slots_dir: Path, devices: tuple[str, ...] | list[str]) -> Slot | None:
    """Non-blocking: lock the first free device, or return None when all are held."""
    slots_dir.mkdir(parents=True, exist_ok=True)
    for device in devices:
        path = slots_dir / f"gpu-{device}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        # Informational only (who holds it); the lock itself is the flock, not this content.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {' '.join(sys.argv)}\n".encode())
        return Slot(device, fd, path)
    return None


def acquire(
    slots_dir: Path, devices: tuple[str, ...] | list[str], timeout: float | None = None, poll: float = 0.5
) -> Slot:
    """Lock a free device, waiting (polling with jitter) while all are held."""
    start = time.monotonic()
    said = False
    while True:
        slot = try_acquire(slots_dir, devices)
        if slot is not None:
            return slot
        if timeout is not None and time.monotonic() - start >= timeout:
            raise UserError(f"no free GPU slot among {list(devices)} in {slots_dir} after {timeout:g} s")
        if not said:
            print(f"onebp gpu-run: all GPU slots {list(devices)} busy; waiting", file=sys.stderr, flush=True)
            said = True
        time.sleep(poll * (0.5 + random.random()))


def run(cmd: list[str], slots_dir: Path | None = None, timeout: float | None = None) -> int:
    """Take a slot, set ``CUDA_VISIBLE_DEVICES`` and exec ``cmd`` (does not return on success)."""
    if not cmd:
        raise UserError("gpu-run: no command given (usage: onebp gpu-run -- CMD ...)")
    env = dict(os.environ)
    p = device_policy(env)
    if p.mode == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
        env["ONEBP_GPU_SLOT"] = "cpu"
    elif p.mode == "slots":
        slot = acquire(slots_dir or default_slots_dir(), p.devices, timeout=timeout)
        os.set_inheritable(slot.fd, True)  # the exec'd job keeps the lock until it exits
        env["CUDA_VISIBLE_DEVICES"] = slot.device
        env["ONEBP_GPU_SLOT"] = slot.device
    else:
        env["ONEBP_GPU_SLOT"] = "scheduler"
    print(
        f"onebp gpu-run: mode={p.mode} CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES', '<unset>')!r}",
        file=sys.stderr,
        flush=True,
    )
    sys.stdout.flush()
    try:
        os.execvpe(cmd[0], cmd, env)
    except OSError as exc:
        raise UserError(f"gpu-run: cannot run {cmd[0]!r}: {exc}") from exc
    return 127  # not reached


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gpu-run",
        help="run a command on a free GPU (file-lock slot), or on the CPU when there is none",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("--slots-dir", type=Path, default=None, help="lock directory (default: node-local tmp)")
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds waiting")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARG ...]")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    return run(cmd, args.slots_dir, args.timeout)



def main(argv: list[str] | None = None) -> int:
    """``python -m onebp.gpu_slots [--slots-dir DIR] -- CMD``: same as ``onebp gpu-run``, without the
    full command line's imports (torch), which would cost every training job a second or two."""
    parser = argparse.ArgumentParser(prog="onebp gpu-run")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["gpu-run", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except UserError as exc:
        print(f"onebp: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
