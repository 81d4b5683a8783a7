"""The GPU-slot lock directory cannot be hijacked by another user: it is created private (0700),
and a symbolic link, a non-directory, a directory of someone else or one that others may write is
refused in one line, as is a planted link in place of a lock file (never followed, never truncated)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from onebp.errors import UserError
from onebp.operations import gpu_slots


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_new_directory_is_private_and_works(tmp_path: Path) -> None:
    d = tmp_path / "deeper" / "slots"
    slot = gpu_slots.try_acquire(d, ["0"])
    assert slot is not None and slot.device == "0"
    assert _mode(d) == 0o700
    lock = d / "gpu-0.slot0.lock"
    assert _mode(lock) & 0o077 == 0  # nobody else may even read who holds it
    assert lock.read_text().split()[0] == str(os.getpid())
    slot.release()


def test_an_existing_private_or_read_only_shared_directory_is_accepted(tmp_path: Path) -> None:
    # what earlier versions created (0755 under umask 022) keeps working
    d = tmp_path / "slots"
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    slot = gpu_slots.try_acquire(d, ["0"])
    assert slot is not None
    slot.release()


def test_a_symlinked_directory_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.mkdir(mode=0o700)
    link = tmp_path / "slots"
    link.symlink_to(target)
    with pytest.raises(UserError, match="symbolic link") as err:
        gpu_slots.try_acquire(link, ["0"])
    assert str(link) in str(err.value) and "\n" not in str(err.value)
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777, 0o702])
def test_a_directory_others_may_write_is_refused(tmp_path: Path, mode: int) -> None:
    d = tmp_path / "slots"
    d.mkdir()
    d.chmod(mode)
    with pytest.raises(UserError, match="writable by others"):
        gpu_slots.try_acquire(d, ["0"])
    assert list(d.iterdir()) == []


def test_a_file_in_place_of_the_directory_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "slots"
    f.write_text("keep me\n")
    with pytest.raises(UserError, match="not a directory"):
        gpu_slots.try_acquire(f, ["0"])
    assert f.read_text() == "keep me\n"


def test_a_directory_of_another_user_is_refused(tmp_path: Path, monkeypatch) -> None:
    d = tmp_path / "slots"
    d.mkdir(mode=0o700)
    mine = os.lstat(d).st_uid
    # Seen from another user's job: the directory (made by "someone else") is not theirs.
    monkeypatch.setattr(os, "getuid", lambda: mine + 1)
    with pytest.raises(UserError, match=f"belongs to uid {mine}"):
        gpu_slots.try_acquire(d, ["0"])
    assert list(d.iterdir()) == []


def test_a_planted_link_in_place_of_a_lock_file_is_never_followed(tmp_path: Path) -> None:
    d = tmp_path / "slots"
    d.mkdir(mode=0o700)
    victim = tmp_path / "precious.txt"
    victim.write_text("results of a week\n")
    (d / "gpu-0.slot0.lock").symlink_to(victim)
    with pytest.raises(UserError, match="gpu-0.slot0.lock"):
        gpu_slots.try_acquire(d, ["0"])
    assert victim.read_text() == "results of a week\n"


def test_something_else_in_place_of_a_lock_file_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "slots"
    d.mkdir(mode=0o700)
    os.mkfifo(d / "gpu-0.slot0.lock")  # would block a plain open; opened non-blocking, then refused
    with pytest.raises(UserError, match="not a regular file"):
        gpu_slots.try_acquire(d, ["0"])


def test_the_per_user_directory_above_a_slurm_allocation_must_be_private(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    base.chmod(0o777)  # someone could rename slurm-7 away and put their own in its place
    with pytest.raises(UserError, match=f"{base} is writable by others"):
        gpu_slots.try_acquire(base / "slurm-7", ["0"], private_parent=True)
    base.chmod(0o700)
    slot = gpu_slots.try_acquire(base / "slurm-7", ["0"], private_parent=True)
    assert slot is not None and _mode(base / "slurm-7") == 0o700
    slot.release()


def test_gpu_run_refuses_a_hijacked_default_directory_in_one_line(tmp_path: Path) -> None:
    """The command as the workflow runs it (lock directory from ONEBP_GPU_SLOTS_DIR): exit 2, one
    line naming the directory, and the command is not run."""
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "slots"
    link.symlink_to(target)
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID")}
    env.update(ONEBP_GPUS="0", ONEBP_GPU_SLOTS_DIR=str(link))
    marker = tmp_path / "ran"
    proc = subprocess.run([sys.executable, "-m", "onebp.operations.gpu_slots", "--", sys.executable, "-c",
                           f"open({str(marker)!r}, 'w')"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(link) in lines[0] and "Traceback" not in proc.stderr
    assert not marker.exists() and list(target.iterdir()) == []


@pytest.mark.parametrize("timeout", [float("nan"), -1.0])
def test_a_timeout_that_is_not_a_duration_is_refused(tmp_path: Path, timeout: float, monkeypatch) -> None:
    # NaN compared false against the elapsed time: a busy slot was waited for forever.
    def no_exec(*args: object) -> None:  # a regression must fail here, not replace the test process
        raise AssertionError("gpu-run went on to run the command")

    monkeypatch.setattr(os, "execvpe", no_exec)
    monkeypatch.setenv("ONEBP_GPUS", "0")
    with pytest.raises(UserError, match="--timeout"):
        gpu_slots.run(["true"], tmp_path / "slots", timeout=timeout, jobs_per_device=1)
