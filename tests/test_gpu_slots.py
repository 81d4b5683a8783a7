"""GPU slots: two concurrent jobs never share a device; a killed job frees its slot."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from onebp import gpu_slots

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
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", *gpu_slots.SCHEDULER_MARKERS)}
    env.update(extra)
    return env


def _job(tmp: Path, name: str, sleep: float, env: dict[str, str], *extra: str) -> subprocess.Popen:
    child = tmp / "child.py"
    child.write_text(CHILD)
    cmd = [sys.executable, "-m", "onebp", "gpu-run", "--slots-dir", str(tmp / "slots"), *extra,
           "--", sys.executable, str(child), str(tmp / name), str(sleep)]
    return subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)


def test_plan_modes() -> None:
    assert gpu_slots.device_policy({"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "0"}).mode == "scheduler"
    assert gpu_slots.device_policy({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}).mode == "scheduler"
    assert gpu_slots.device_policy({"ONEBP_GPUS": ""}).mode == "cpu"
    assert gpu_slots.device_policy({"ONEBP_GPUS": "0,1"}) == gpu_slots.DevicePolicy("slots", ("0", "1"))
    # A user's CUDA_VISIBLE_DEVICES narrows the pool; the locks still apply inside it.
    assert gpu_slots.device_policy({"CUDA_VISIBLE_DEVICES": "2,3"}) == gpu_slots.DevicePolicy("slots", ("2", "3"))
    assert gpu_slots.device_policy({"CUDA_VISIBLE_DEVICES": ""}).mode == "cpu"


def test_try_acquire_in_process(tmp_path: Path) -> None:
    a = gpu_slots.try_acquire(tmp_path, ["0", "1"])
    b = gpu_slots.try_acquire(tmp_path, ["0", "1"])
    assert a is not None and b is not None and {a.device, b.device} == {"0", "1"}
    assert gpu_slots.try_acquire(tmp_path, ["0", "1"]) is None
    a.release()
    c = gpu_slots.try_acquire(tmp_path, ["0", "1"])
    assert c is not None and c.device == a.device


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
    ("extra", "expected"),
    [({"ONEBP_GPUS": ""}, ""), ({"SLURM_JOB_ID": "1", "CUDA_VISIBLE_DEVICES": "3"}, "3")],
)
def test_cpu_and_scheduler_env(tmp_path: Path, extra: dict[str, str], expected: str) -> None:
    p = _job(tmp_path, "j", 0, _env(**extra))
    assert p.wait(timeout=30) == 0, p.stderr.read()
    assert (tmp_path / "j.start").read_text() == expected
