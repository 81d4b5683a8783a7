"""GPU slots: give each training job its share of a device through ``flock`` lock files.

Snakemake's ``gpu`` resource only *counts* jobs; it does not say which device a job should use.
``onebp gpu-run -- CMD ...`` picks a device by taking non-blocking exclusive locks on
``<slots-dir>/gpu-<device>.slot<k>.lock`` (the least-loaded device that has enough free slots,
polling while none has), sets ``CUDA_VISIBLE_DEVICES=<device>`` and ``CUDA_DEVICE_ORDER=PCI_BUS_ID``
and then *execs* CMD. The locked file descriptors are inherited across ``exec``, so the lock lives
exactly as long as the job: the kernel releases it when the process dies, even on SIGKILL, and no
stale lock files need cleaning up.

Jobs per device. A device has ``--jobs-per-device K`` slots (``gpu_jobs_per_device`` in the
workflow's config, env ``ONEBP_GPU_JOBS_PER_DEVICE``; default 1); a job takes ``--slots m`` of them
on one device (default 1; the workflow passes the job's Snakemake ``gpu`` resource, so a dataset
whose runs need a whole device asks for K). ``--slots 0`` runs the job on the CPU, explicitly.
Because the locks, not the resource count, decide the device, a user who forgets
``--resources gpu=N`` still never gets more than K jobs on one GPU: extra jobs wait for a slot.

Which devices. ``ONEBP_GPUS=0,1`` if set; else the ``CUDA_VISIBLE_DEVICES`` the job was started with
(set by the user, or by a scheduler's allocation: ``salloc --gpus=4`` or a 4-GPU pod lock *within*
their visible set, so jobs spread over the allocation's devices); else ``nvidia-smi
--query-gpu=index`` (one line per physical GPU whatever MIG shows), where a GPU split into MIG
instances contributes one device per instance (``MIG-<uuid>`` from ``nvidia-smi -L``); else
``torch.cuda.device_count()``. No device: the job runs on the CPU with ``CUDA_VISIBLE_DEVICES=""``.

Lock scope. Lock files are node-local, per user and, inside a SLURM job, per allocation
(``slurm-<SLURM_JOB_ID>/``): two allocations on one node may both see their own GPU as device 0,
and must not serialise each other. Kubernetes pods have their own ``/tmp``.

Lock directory safety. The default directory has a predictable name in a world-writable ``/tmp``
(``onebp-gpu-slots-<uid>``), so another user could create it first, or plant a symbolic link there,
and have a job truncate and write a file of theirs choosing. The directory (and, inside SLURM, the
per-user directory above the allocation's) is therefore created mode 0700, opened without following
a link, and refused in one line unless it is a real directory owned by this user that neither group
nor others may write; lock files are opened relative to that open directory, without following links,
and are only written when they are regular files owned by this user.

A job that holds a GPU slot is told so (``ONEBP_GPU_SLOT=<device>``, ``onebp.training.device``): the trainer then refuses to
run on the CPU when CUDA turns out to be unavailable (a CPU-only torch on a GPU node, a broken
driver) instead of silently taking days on the wrong device.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import os
import random
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from onebp.errors import UserError
from onebp.training.device import SLOT_ENV  # the slot contract lives with its reader, the trainer

SCHEDULER_MARKERS = ("SLURM_JOB_ID", "KUBERNETES_SERVICE_HOST")
JOBS_PER_DEVICE_ENV = "ONEBP_GPU_JOBS_PER_DEVICE"


def default_slots_dir(env: Mapping[str, str] | None = None) -> Path:
    """Node-local (GPUs are node-local), per user (lock files must be writable by the user), and
    per SLURM allocation (module docstring)."""
    env = os.environ if env is None else env
    base = Path(env.get("ONEBP_GPU_SLOTS_DIR") or Path(tempfile.gettempdir()) / f"onebp-gpu-slots-{os.getuid()}")
    if env.get("SLURM_JOB_ID"):
        return base / f"slurm-{env['SLURM_JOB_ID']}"
    return base


def _parse_devices(value: str) -> list[str]:
    return [d.strip() for d in value.split(",") if d.strip() and d.strip() != "-1"]


def parse_query_index(text: str) -> list[str]:
    """``nvidia-smi --query-gpu=index --format=csv,noheader``: one integer per physical GPU."""
    return [line.strip() for line in text.splitlines() if line.strip().isdigit()]


_GPU_LINE = re.compile(r"^GPU (\d+):")
_MIG_LINE = re.compile(r"^\s+MIG .*\(UUID: (MIG-[^)\s]+)\)")


def parse_mig_instances(text: str) -> dict[str, list[str]]:
    """``nvidia-smi -L``: GPU index → the UUIDs of its MIG instances (GPUs without any are absent).
    The index is read from each ``GPU <i>:`` line itself, never from the line's position."""
    out: dict[str, list[str]] = {}
    gpu = None
    for line in text.splitlines():
        m = _GPU_LINE.match(line)
        if m:
            gpu = m.group(1)
            continue
        m = _MIG_LINE.match(line)
        if m and gpu is not None:
            out.setdefault(gpu, []).append(m.group(1))
    return out


def _nvidia_smi(*args: str) -> str | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, *args], capture_output=True, text=True, timeout=30, check=False,
                             env={**os.environ, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"})
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def detect_gpus(smi: Callable[..., str | None] = _nvidia_smi) -> list[str]:
    """Devices on this machine (module docstring): GPU indices, MIG instances as ``MIG-<uuid>``."""
    listing = smi("--query-gpu=index", "--format=csv,noheader")
    if listing is not None:
        indices = parse_query_index(listing)
        mig = parse_mig_instances(smi("-L") or "") if indices else {}
        return [d for i in indices for d in mig.get(i, [i])]
    try:
        import torch  # only reached without nvidia-smi; keeps the common path fast
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())]


@dataclass(frozen=True)
class DevicePolicy:
    """What to do before exec: ``mode`` is ``cpu`` or ``slots`` (lock among ``devices``);
    ``source`` says where the devices came from (for the log line)."""

    mode: str
    devices: tuple[str, ...] = ()
    source: str = ""


def device_policy(env: Mapping[str, str], slots: int = 1,
                  detect: Callable[[], list[str]] = detect_gpus) -> DevicePolicy:
    if slots == 0:
        return DevicePolicy("cpu", source="the job asked for no GPU (--slots 0)")
    if "ONEBP_GPUS" in env:  # explicit device list (tests, or to reserve GPUs for others)
        devices, source = _parse_devices(env["ONEBP_GPUS"]), "ONEBP_GPUS"
    elif "CUDA_VISIBLE_DEVICES" in env:
        # Set by the user, or by a scheduler's allocation: lock within the visible set either way.
        devices, source = _parse_devices(env["CUDA_VISIBLE_DEVICES"]), "CUDA_VISIBLE_DEVICES"
    else:
        devices, source = detect(), "nvidia-smi"
    if not devices:
        return DevicePolicy("cpu", source=f"no GPU ({source})")
    return DevicePolicy("slots", tuple(devices), source)


def _lock_name(device: str, k: int) -> str:
    return f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', device)}.slot{k}.lock"


class Slot:
    """Held locks on ``len(fds)`` slots of one device; the file descriptors are the locks."""

    def __init__(self, device: str, fds: list[int], slots_dir: Path):
        self.device, self.fds, self.slots_dir = device, fds, slots_dir

    def release(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def _refuse_unsafe_dir(fd: int, path: Path) -> None:
    """Refuse a lock directory another user could write or swap (see the module docstring)."""
    st = os.fstat(fd)
    if not stat.S_ISDIR(st.st_mode):
        raise UserError(f"gpu-run: lock directory {path} is not a directory")
    if st.st_uid != os.getuid():
        raise UserError(f"gpu-run: lock directory {path} belongs to uid {st.st_uid}, not to you "
                        f"(uid {os.getuid()}); set ONEBP_GPU_SLOTS_DIR or --slots-dir to a directory of yours")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UserError(f"gpu-run: lock directory {path} is writable by others (mode "
                        f"{stat.S_IMODE(st.st_mode):04o}); chmod go-w it or choose another with --slots-dir")


def _open_private_dir(path: Path, parent_fd: int | None = None) -> int:
    """Create ``path`` (mode 0700) unless it exists, open it without following a final symbolic link
    and check it; returns the directory's file descriptor. With ``parent_fd``, ``path`` is a single
    name inside that (already checked) directory, so a rename above it cannot redirect the lookup."""
    where = path if parent_fd is None else path.name
    try:
        if parent_fd is None:
            path.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(where, 0o700, dir_fd=parent_fd)
    except FileExistsError:
        pass  # checked below, whoever made it
    except OSError as exc:
        raise UserError(f"gpu-run: cannot create lock directory {path}: {exc.strerror}") from None
    try:
        fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    except OSError as exc:
        if os.path.islink(path):
            raise UserError(f"gpu-run: lock directory {path} is a symbolic link; "
                            "give the real directory with --slots-dir") from None
        why = "not a directory" if exc.errno == errno.ENOTDIR else exc.strerror
        raise UserError(f"gpu-run: lock directory {path}: {why}") from None
    try:
        _refuse_unsafe_dir(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_slots_dir(slots_dir: Path, private_parent: bool = False) -> int:
    """The checked lock directory's file descriptor (caller closes it). ``private_parent``: the
    directory above must be private too (the per-user directory above a SLURM allocation's)."""
    if not private_parent:
        return _open_private_dir(slots_dir)
    parent = _open_private_dir(slots_dir.parent)
    try:
        return _open_private_dir(slots_dir, parent_fd=parent)
    finally:
        os.close(parent)


def _try_lock(dir_fd: int, name: str, where: Path) -> int | None:
    # O_NOFOLLOW: a planted link is an error, never followed; no O_TRUNC: nothing is cut before the
    # file is known to be ours (try_acquire truncates only the locks it holds, after the check below).
    try:
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600,
                     dir_fd=dir_fd)
    except OSError as exc:
        raise UserError(f"gpu-run: cannot open lock file {where / name}: "
                        f"{'a symbolic link' if exc.errno == errno.ELOOP else exc.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
        os.close(fd)
        raise UserError(f"gpu-run: lock file {where / name} is not a regular file of yours; remove it")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def try_acquire(slots_dir: Path, devices: Sequence[str], jobs_per_device: int = 1, slots: int = 1,
                private_parent: bool = False) -> Slot | None:
    """Non-blocking: ``slots`` free slots on the least-loaded device that has them, or None."""
    if not 1 <= slots <= jobs_per_device:
        raise UserError(f"gpu-run: a job takes 1..{jobs_per_device} slots of a device "
                        f"(--jobs-per-device {jobs_per_device}), not {slots}")
    dir_fd = open_slots_dir(slots_dir, private_parent)
    best: tuple[str, list[int]] | None = None
    try:
        for device in devices:
            held: list[int] = []
            try:
                for k in range(jobs_per_device):
                    fd = _try_lock(dir_fd, _lock_name(device, k), slots_dir)
                    if fd is not None:
                        held.append(fd)
            except BaseException:
                for fd in held + (best[1] if best else []):
                    os.close(fd)
                raise
            if len(held) >= slots and (best is None or len(held) > len(best[1])):
                if best is not None:
                    for fd in best[1]:
                        os.close(fd)
                best = (device, held)
            else:
                for fd in held:
                    os.close(fd)
    finally:
        os.close(dir_fd)
    if best is None:
        return None
    device, held = best
    for fd in held[slots:]:
        os.close(fd)
    for fd in held[:slots]:
        # Informational only (who holds it); the lock itself is the flock, not this content. The
        # file was checked to be a regular file of ours before it was locked.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {' '.join(sys.argv)}\n".encode())
    return Slot(device, held[:slots], slots_dir)


def acquire(slots_dir: Path, devices: Sequence[str], timeout: float | None = None, poll: float = 0.5,
            jobs_per_device: int = 1, slots: int = 1, private_parent: bool = False) -> Slot:
    """Lock free slots, waiting (polling with jitter) while no device has enough."""
    start = time.monotonic()
    said = False
    while True:
        slot = try_acquire(slots_dir, devices, jobs_per_device, slots, private_parent)
        if slot is not None:
            return slot
        if timeout is not None and time.monotonic() - start >= timeout:
            raise UserError(f"no free GPU slot among {list(devices)} in {slots_dir} after {timeout:g} s")
        if not said:
            print(f"onebp gpu-run: all GPU slots {list(devices)} busy; waiting", file=sys.stderr, flush=True)
            said = True
        time.sleep(poll * (0.5 + random.random()))


def jobs_per_device_from(env: Mapping[str, str], given: int | None) -> int:
    if given is not None:
        value = given
    else:
        raw = env.get(JOBS_PER_DEVICE_ENV, "1") or "1"
        if not raw.isdigit():
            raise UserError(f"{JOBS_PER_DEVICE_ENV}={raw!r}: expected a positive integer")
        value = int(raw)
    if value < 1:
        raise UserError(f"gpu-run: jobs per device must be >= 1, not {value}")
    return value


def run(cmd: list[str], slots_dir: Path | None = None, timeout: float | None = None,
        jobs_per_device: int | None = None, slots: int = 1) -> int:
    """Take slots, set ``CUDA_VISIBLE_DEVICES`` and exec ``cmd`` (does not return on success)."""
    if not cmd:
        raise UserError("gpu-run: no command given (usage: onebp gpu-run -- CMD ...)")
    env = dict(os.environ)
    k = jobs_per_device_from(env, jobs_per_device)
    if slots < 0 or slots > k:
        raise UserError(f"gpu-run: --slots {slots} must lie in 0..{k} (--jobs-per-device {k})")
    if timeout is not None and not timeout >= 0:  # NaN would wait forever: every comparison is false
        raise UserError(f"gpu-run: --timeout {timeout:g} must be a number of seconds >= 0")
    p = device_policy(env, slots)
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # CUDA numbers devices as nvidia-smi does
    if p.mode == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
        env[SLOT_ENV] = "cpu"
        where = f"cpu: {p.source}"
    else:
        # The per-allocation directory lives in the per-user one, which must then be private too.
        private_parent = slots_dir is None and bool(env.get("SLURM_JOB_ID"))
        slot = acquire(slots_dir or default_slots_dir(env), p.devices, timeout=timeout,
                       jobs_per_device=k, slots=slots, private_parent=private_parent)
        for fd in slot.fds:
            os.set_inheritable(fd, True)  # the exec'd job keeps the locks until it exits
        env["CUDA_VISIBLE_DEVICES"] = slot.device
        env[SLOT_ENV] = slot.device
        where = f"{slots} of {k} slot(s) of device {slot.device} (devices from {p.source}: {','.join(p.devices)})"
    print(f"onebp gpu-run: {where}; CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']!r}",
          file=sys.stderr, flush=True)
    sys.stdout.flush()
    try:
        os.execvpe(cmd[0], cmd, env)
    except OSError as exc:
        raise UserError(f"gpu-run: cannot run {cmd[0]!r}: {exc}") from exc
    return 127  # not reached


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gpu-run",
        help="run a command on a free GPU slot (file locks), or on the CPU when there is none",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("--slots-dir", type=Path, default=None, help="lock directory (default: node-local tmp)")
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds waiting")
    p.add_argument("--jobs-per-device", type=int, default=None,
                   help=f"slots per GPU (default: env {JOBS_PER_DEVICE_ENV}, else 1)")
    p.add_argument("--slots", type=int, default=1, help="slots this job takes on one GPU; 0 = run on the CPU")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARG ...]")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    return run(cmd, args.slots_dir, args.timeout, args.jobs_per_device, args.slots)


def main(argv: list[str] | None = None) -> int:
    """``python -m onebp.operations.gpu_slots [--slots-dir DIR] -- CMD``: same as ``onebp gpu-run``, without the
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
