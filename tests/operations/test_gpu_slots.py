"""GPU slots: two concurrent jobs never share a device; a killed job frees its slot."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from onebp.operations import gpu_slots

CHILD = """
import os, sys, time
out = sys.argv[1]
start = time.time()
with open(out + ".start", "w") as f:
    f.write(os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))
time.sleep(float(sys.argv[2]))
with open(out, "w") as f:
    f.write(f"{os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')} {start} {time.time()}")
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CUDA_VISIBLE_DEVICES", gpu_slots.JOBS_PER_DEVICE_ENV, *gpu_slots.SCHEDULER_MARKERS)}
    env.update(extra)
    return env


def _job(tmp: Path, name: str, sleep: float, env: dict[str, str], *extra: str) -> subprocess.Popen:
    child = tmp / "child.py"
    child.write_text(CHILD)
    cmd = [sys.executable, "-m", "onebp.operations.gpu_slots", "--slots-dir", str(tmp / "slots"), *extra,
           "--", sys.executable, str(child), str(tmp / name), str(sleep)]
    return subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)


# Recorded nvidia-smi outputs. A node with two A100s, the first split into two MIG instances:
# `-L` has MIG lines under GPU 0, so numbering the lines made the second GPU "device 3".
MIG_QUERY = "0\n1\n"
MIG_LIST = """GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)
  MIG 3g.20gb     Device  0: (UUID: MIG-1b2e3c4d-aaaa-5b6c-8d9e-0f1a2b3c4d5e)
  MIG 3g.20gb     Device  1: (UUID: MIG-7c8d9e0f-bbbb-5b6c-8d9e-0f1a2b3c4d5e)
GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-a41b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d)
"""
# A 4-GPU node without MIG (e.g. inside `salloc --gpus=4` or a 4-GPU pod).
FOUR_QUERY = "0\n1\n2\n3\n"
FOUR_LIST = "".join(f"GPU {i}: NVIDIA H100 80GB HBM3 (UUID: GPU-0000000{i}-1111-2222-3333-444444444444)\n"
                    for i in range(4))


def _recorded(query: str, listing: str):
    def smi(*args: str) -> str | None:
        return query if args[0].startswith("--query-gpu=index") else listing
    return smi


def test_discovery_mig_never_shifts_indices() -> None:
    assert gpu_slots.parse_query_index(MIG_QUERY) == ["0", "1"]
    assert gpu_slots.detect_gpus(_recorded(MIG_QUERY, MIG_LIST)) == [
        "MIG-1b2e3c4d-aaaa-5b6c-8d9e-0f1a2b3c4d5e", "MIG-7c8d9e0f-bbbb-5b6c-8d9e-0f1a2b3c4d5e", "1"]
    assert gpu_slots.detect_gpus(_recorded(FOUR_QUERY, FOUR_LIST)) == ["0", "1", "2", "3"]
    # -L failing (None) still gives the indices
    assert gpu_slots.detect_gpus(_recorded(FOUR_QUERY, None)) == ["0", "1", "2", "3"]


def test_discovery_runs_the_index_query(tmp_path: Path, monkeypatch) -> None:
    """A fake nvidia-smi on PATH that answers only the index query and -L (anything else fails)."""
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    (tmp_path / "query.txt").write_text(MIG_QUERY)
    (tmp_path / "list.txt").write_text(MIG_LIST)
    fake.write_text(f"""#!/bin/sh
[ "$CUDA_DEVICE_ORDER" = PCI_BUS_ID ] || exit 3
case "$1 $2" in
  "--query-gpu=index --format=csv,noheader") cat {tmp_path}/query.txt ;;
  "-L ") cat {tmp_path}/list.txt ;;
  *) exit 9 ;;
esac
""")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    assert gpu_slots.detect_gpus()[-1] == "1" and len(gpu_slots.detect_gpus()) == 3


def test_plan_modes() -> None:
    none = lambda: []  # noqa: E731
    four = lambda: ["0", "1", "2", "3"]  # noqa: E731
    assert gpu_slots.device_policy({"ONEBP_GPUS": ""}, detect=four).mode == "cpu"
    assert gpu_slots.device_policy({"ONEBP_GPUS": "0,1"}).devices == ("0", "1")
    # A user's or a scheduler's CUDA_VISIBLE_DEVICES narrows the pool; the locks apply inside it.
    assert gpu_slots.device_policy({"CUDA_VISIBLE_DEVICES": "2,3"}).devices == ("2", "3")
    assert gpu_slots.device_policy({"CUDA_VISIBLE_DEVICES": ""}, detect=four).mode == "cpu"
    # Inside a multi-GPU SLURM allocation or pod: lock within the visible set, never "all on cuda:0".
    slurm = {"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    assert gpu_slots.device_policy(slurm) == gpu_slots.DevicePolicy("slots", ("0", "1", "2", "3"),
                                                                     "CUDA_VISIBLE_DEVICES")
    pod = {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}  # device plugin: no CUDA_VISIBLE_DEVICES, nvidia-smi sees 4
    assert gpu_slots.device_policy(pod, detect=four).devices == ("0", "1", "2", "3")
    assert gpu_slots.device_policy(pod, detect=none).mode == "cpu"
    # A job that asks for no GPU runs on the CPU explicitly, even where GPUs exist.
    assert gpu_slots.device_policy({"ONEBP_GPUS": "0,1"}, slots=0).mode == "cpu"


def test_lock_scope_per_slurm_allocation(tmp_path: Path) -> None:
    base = {"ONEBP_GPU_SLOTS_DIR": str(tmp_path)}
    assert gpu_slots.default_slots_dir(base) == tmp_path
    assert gpu_slots.default_slots_dir({**base, "SLURM_JOB_ID": "42"}) == tmp_path / "slurm-42"


def test_try_acquire_in_process(tmp_path: Path) -> None:
    a = gpu_slots.try_acquire(tmp_path, ["0", "1"])
    b = gpu_slots.try_acquire(tmp_path, ["0", "1"])
    assert a is not None and b is not None and {a.device, b.device} == {"0", "1"}
    assert gpu_slots.try_acquire(tmp_path, ["0", "1"]) is None
    a.release()
    c = gpu_slots.try_acquire(tmp_path, ["0", "1"])
    assert c is not None and c.device == a.device


def test_jobs_per_device_in_process(tmp_path: Path) -> None:
    """Two slots per device: jobs spread over devices first; a whole-device job needs both slots."""
    held = [gpu_slots.try_acquire(tmp_path, ["0", "1"], jobs_per_device=2) for _ in range(3)]
    assert [h.device for h in held] == ["0", "1", "0"]
    # device 1 has one free slot, device 0 none: a 2-slot job must wait, a 1-slot job fits
    assert gpu_slots.try_acquire(tmp_path, ["0", "1"], jobs_per_device=2, slots=2) is None
    held[1].release()
    whole = gpu_slots.try_acquire(tmp_path, ["0", "1"], jobs_per_device=2, slots=2)
    assert whole is not None and whole.device == "1" and len(whole.fds) == 2
    assert gpu_slots.try_acquire(tmp_path, ["0", "1"], jobs_per_device=2) is None
    with pytest.raises(gpu_slots.UserError, match="1..2 slots"):
        gpu_slots.try_acquire(tmp_path, ["0"], jobs_per_device=2, slots=3)


def test_jobs_per_device_with_processes(tmp_path: Path) -> None:
    """Real processes and flock: 2 devices x 2 jobs per device, 6 jobs of 1.5 s: never more than two
    on one device, four at a time, and the last two wait."""
    env = _env(ONEBP_GPUS="0,1", ONEBP_GPU_JOBS_PER_DEVICE="2")
    procs = [_job(tmp_path, f"job{i}", 1.5, env) for i in range(6)]
    for p in procs:
        assert p.wait(timeout=60) == 0, p.stderr.read()
    spans = []
    for i in range(6):
        dev, start, end = (tmp_path / f"job{i}").read_text().split()
        spans.append((dev, float(start), float(end)))
    assert {d for d, _, _ in spans} == {"0", "1"}
    for t in sorted(s for _, s, _ in spans):
        running = [d for d, s, e in spans if s <= t < e]
        assert len(running) <= 4, spans
        assert max(running.count("0"), running.count("1")) <= 2, spans
    assert max(sum(s <= t < e for _, s, e in spans) for _, t, _ in spans) >= 3  # they did share


def test_concurrent_jobs_get_distinct_devices(tmp_path: Path) -> None:
    env = _env(ONEBP_GPUS="0,1")
    procs = [_job(tmp_path, f"job{i}", 1.5, env) for i in range(4)]
    for p in procs:
        assert p.wait(timeout=60) == 0, p.stderr.read()
    spans = []
    for i in range(4):
        dev, start, end = (tmp_path / f"job{i}").read_text().split()
        spans.append((dev, float(start), float(end)))
    assert {d for d, _, _ in spans} == {"0", "1"}
    for i, (d1, s1, e1) in enumerate(spans):
        for d2, s2, e2 in spans[i + 1 :]:
            if d1 == d2:
                assert e1 <= s2 or e2 <= s1, f"two jobs held GPU {d1} at once: {spans}"
    # With 2 devices and 4 jobs of 1.5 s, some job had to wait: no third concurrent holder.
    assert max(sum(s <= t < e for _, s, e in spans) for _, t, _ in spans) <= 2


def test_killed_job_frees_its_slot(tmp_path: Path) -> None:
    env = _env(ONEBP_GPUS="0")
    holder = _job(tmp_path, "holder", 60, env)
    deadline = time.time() + 30
    while not (tmp_path / "holder.start").exists():
        assert time.time() < deadline and holder.poll() is None, holder.stderr.read()
        time.sleep(0.05)
    assert (tmp_path / "holder.start").read_text() == "0"
    # While it lives, nobody else gets GPU 0.
    blocked = _job(tmp_path, "blocked", 0, env, "--timeout", "1")
    assert blocked.wait(timeout=30) == 2
    assert "no free GPU slot" in blocked.stderr.read()
    holder.send_signal(signal.SIGKILL)  # exec'd: the Popen pid is the job itself
    holder.wait(timeout=10)
    after = _job(tmp_path, "after", 0, env, "--timeout", "10")
    assert after.wait(timeout=30) == 0, after.stderr.read()
    assert (tmp_path / "after").read_text().split()[0] == "0"


@pytest.mark.parametrize(
    ("extra", "args", "expected"),
    [({"ONEBP_GPUS": ""}, (), ""),
     ({"SLURM_JOB_ID": "1", "CUDA_VISIBLE_DEVICES": "3"}, (), "3"),
     ({"SLURM_JOB_ID": "1", "CUDA_VISIBLE_DEVICES": "3"}, ("--slots", "0"), "")],
)
def test_cpu_and_scheduler_env(tmp_path: Path, extra: dict[str, str], args: tuple[str, ...], expected: str) -> None:
    p = _job(tmp_path, "j", 0, _env(**extra), *args)
    assert p.wait(timeout=30) == 0, p.stderr.read()
    assert (tmp_path / "j.start").read_text() == expected


def test_scheduler_allocation_spreads_jobs(tmp_path: Path) -> None:
    """Inside `salloc --gpus=2` (SLURM_JOB_ID set, CUDA_VISIBLE_DEVICES=0,1): two concurrent jobs get
    the two devices, not both cuda:0 as when the scheduler meant "no lock"."""
    env = _env(SLURM_JOB_ID="99", CUDA_VISIBLE_DEVICES="0,1")
    procs = [_job(tmp_path, f"s{i}", 1.0, env) for i in range(2)]
    for p in procs:
        assert p.wait(timeout=60) == 0, p.stderr.read()
    assert sorted((tmp_path / f"s{i}").read_text().split()[0] for i in range(2)) == ["0", "1"]
