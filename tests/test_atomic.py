"""Atomic writes: never half-written, and with the mode an ordinary open() would give."""

from __future__ import annotations

import os
import stat

import pytest

from onebp.atomic import atomic_path, atomic_write, current_umask


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600), (0o002, 0o664)])
def test_file_mode_follows_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        assert current_umask() == mask
        atomic_write(tmp_path / "a.json", "{}")
        with atomic_path(tmp_path / "b.pt") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    for name in ("a.json", "b.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "c.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def recording_fsync(monkeypatch, calls, dir_error=None):
    """Record fsync and replace calls in order; fsync of a directory raises ``dir_error`` if given."""
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        st = os.fstat(fd)
        kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
        calls.append((f"fsync-{kind}", st.st_ino))
        if kind == "dir" and dir_error is not None:
            raise dir_error
        real_fsync(fd)

    def replace(src, dst):
        calls.append(("replace", os.stat(src).st_ino))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)


def test_the_file_is_flushed_before_the_rename_and_the_directory_after(tmp_path, monkeypatch):
    # A crash after the rename but before the data reached the disk leaves a short file under the
    # target's name; so: fsync(temporary file), then replace, then fsync(directory).
    calls = []
    recording_fsync(monkeypatch, calls)
    atomic_write(tmp_path / "a.json", "{}")
    file_ino = (tmp_path / "a.json").stat().st_ino
    assert calls == [("fsync-file", file_ino), ("replace", file_ino), ("fsync-dir", tmp_path.stat().st_ino)]
    calls.clear()
    with atomic_path(tmp_path / "b.pt") as tmp, open(tmp, "wb") as f:  # the caller's own writer
        f.write(b"x" * 10)
    assert [c[0] for c in calls] == ["fsync-file", "replace", "fsync-dir"]
    assert (tmp_path / "b.pt").read_bytes() == b"x" * 10


def test_a_directory_that_refuses_fsync_does_not_fail_the_write(tmp_path, monkeypatch):
    calls = []
    recording_fsync(monkeypatch, calls, dir_error=OSError(22, "Invalid argument"))
    atomic_write(tmp_path / "a.json", "{}")
    assert (tmp_path / "a.json").read_text() == "{}"
    assert [c[0] for c in calls] == ["fsync-file", "replace", "fsync-dir"]


def test_a_failed_fsync_of_the_file_keeps_the_old_target(tmp_path, monkeypatch):
    # data that may not be on disk is never renamed onto the target
    (tmp_path / "a.json").write_text("old")

    def broken(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="Input/output error"):
        atomic_write(tmp_path / "a.json", "new")
    assert (tmp_path / "a.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names an fd through /proc (Linux)")
def test_fsync_tree_flushes_every_file_and_folder(tmp_path, monkeypatch):

    from onebp import atomic

    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("x", "a/y", "a/b/z"):
        (tmp_path / name).write_text(name)
    flushed = []
    real_fsync = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (flushed.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                          real_fsync(fd)))
    atomic.fsync_tree(tmp_path)
    assert sorted(flushed) == sorted(str(tmp_path / p) for p in ("x", "a/y", "a/b/z", "", "a", "a/b"))
