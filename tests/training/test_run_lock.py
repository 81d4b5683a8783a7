"""One `onebp train` per run directory: a second one is refused before it writes anything, a killed
holder never blocks a resume, and the lock file is never a symlink followed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from onebp.cli import main
from onebp.errors import UserError
from onebp.training.run_lock import LOCK_NAME, RunDirectoryBusy, RunLock

TRAIN = ["--method", "onebp", "--set", "dim=8", "--set", "batch_size=64", "--set", "threads=1"]
HOLD = ("import sys, time\nfrom onebp.training.run_lock import RunLock\n"
        "RunLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\ntime.sleep(600)\n")


def wait_for(path, proc, what):
    deadline = time.time() + 120
    while not path.exists():
        assert proc.poll() is None, f"the first process ended before {what}: {proc.stderr.read()}"
        assert time.time() < deadline, f"no {what} after 120 s"
        time.sleep(0.05)


def test_a_second_train_on_a_directory_in_use_is_refused_before_any_write(tiny_split_dir, tmp_path, capsys):
    out = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "onebp", "train", "--data", str(tiny_split_dir), *TRAIN, "--set", "epochs=100000",
         "--set", "eval_every=50", "--set", "patience_epochs=1000000", "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(out / "run_state.json", first, "run_state.json")  # config.json and env.json come first
        before = {n: (out / n).read_bytes() for n in ("config.json", "env.json", "run_state.json")}
        code = main(["train", "--data", str(tiny_split_dir), *TRAIN, "--set", "lr=0.5", "--set", "epochs=3",
                     "--out", str(out)])
        _, err = capsys.readouterr()
        assert code == 2
        assert err.count("\n") == 1 and err.startswith("onebp: error: ")
        assert str(out) in err and f"pid {first.pid}" in err and "another --out" in err
        # the first run's record is untouched: it still says what it trains with
        assert {n: (out / n).read_bytes() for n in before} == before
        assert json.loads(before["config.json"])["lr"] != 0.5
        # --fresh is refused as well, and deletes nothing
        code = main(["train", "--data", str(tiny_split_dir), *TRAIN, "--out", str(out), "--fresh"])
        assert code == 2 and "another `onebp train`" in capsys.readouterr()[1]
        assert {n: (out / n).read_bytes() for n in before} == before
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    # killed: its run_state.json still says "running", but the lock went with the process
    assert json.loads((out / "run_state.json").read_text())["state"] == "running"
    with RunLock(out) as lock:
        assert lock.held


def test_a_killed_holder_does_not_block_and_a_live_one_is_named(tmp_path):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirectoryBusy, match=rf"{run_dir}: another `onebp train`.*\(pid {holder.pid} on "):
            RunLock(run_dir).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate()
    lock = RunLock(run_dir).acquire()
    assert lock.held
    info = json.loads((run_dir / LOCK_NAME).read_text())
    assert info["pid"] == os.getpid()
    lock.release()
    assert not (run_dir / LOCK_NAME).exists() and run_dir.is_dir()  # existed before: kept


def test_a_lock_held_in_this_process_refuses_train_and_nothing_is_created(tiny_split_dir, tmp_path, capsys):
    # flock locks belong to open files, not processes: a second open in this process is refused too
    out = tmp_path / "run"
    with RunLock(out):
        code = main(["train", "--data", str(tiny_split_dir), *TRAIN, "--set", "epochs=2", "--out", str(out)])
        assert code == 2 and f"pid {os.getpid()}" in capsys.readouterr()[1]
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
    # the lock made the directory and nothing else was written there: it goes again
    assert not out.exists()


def test_a_refused_start_after_locking_leaves_no_directory(tiny_split_dir, tmp_path, capsys, monkeypatch):
    # the trainer may refuse the data (device, memory) after the lock created the directory: the
    # directory is removed again, as before there was a lock
    from onebp.training.trainer import Trainer

    def refuse(self, *args, **kwargs):
        raise UserError("this data is refused")

    monkeypatch.setattr(Trainer, "__init__", refuse)
    out = tmp_path / "runs" / "a" / "run"
    code = main(["train", "--data", str(tiny_split_dir), *TRAIN, "--out", str(out)])
    assert code == 2 and "this data is refused" in capsys.readouterr()[1]
    assert list(tmp_path.iterdir()) == []  # neither the run directory nor the parents it needed


def test_a_symlink_planted_as_the_lock_file_is_never_followed(tmp_path):
    run_dir, victim = tmp_path / "run", tmp_path / "victim.txt"
    run_dir.mkdir()
    victim.write_text("precious\n")
    (run_dir / LOCK_NAME).symlink_to(victim)
    with pytest.raises(UserError, match=r"is a symbolic link; refusing to follow it"):
        RunLock(run_dir).acquire()
    assert victim.read_text() == "precious\n"
    assert (run_dir / LOCK_NAME).is_symlink()


def test_a_lock_file_that_is_not_a_regular_file_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / LOCK_NAME).mkdir(parents=True)
    with pytest.raises(UserError, match=r"cannot open the lock file|not a regular file"):
        RunLock(run_dir).acquire()


def test_an_out_path_that_is_a_file_is_one_line_error(tiny_split_dir, tmp_path, capsys):
    out = tmp_path / "run"
    out.write_text("not a directory")
    code = main(["train", "--data", str(tiny_split_dir), *TRAIN, "--set", "epochs=2", "--out", str(out)])
    err = capsys.readouterr()[1]
    assert code == 2 and err.count("\n") == 1 and str(out) in err
    assert out.read_text() == "not a directory"


def test_a_file_system_without_locks_warns_and_trains_unguarded(tmp_path, monkeypatch, capsys):
    import errno
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with RunLock(tmp_path / "run") as lock:
        assert lock.unguarded and not lock.held
    err = capsys.readouterr()[1]
    assert err.startswith("onebp: warning: ") and "cannot lock files (No locks available)" in err
