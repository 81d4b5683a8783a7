"""Writes that never leave a half-written file: a temporary file in the target's directory, renamed
onto the target only when complete (``os.replace`` is atomic on one file system).

The rename alone is atomic for other processes, not across a crash of the machine: file systems
may commit the rename before the file's data, so after a power cut the target could be empty or
short. The temporary file is therefore flushed to disk (``fsync``) before the rename, and the
directory after it so the rename itself is durable (best effort: some systems refuse to fsync a
directory)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


def current_umask() -> int:
    """The process umask, read without changing it where Linux reports it (``/proc/self/status``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, then put it back
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a fresh temporary path next to ``path``; rename it onto ``path`` when the block ends
    normally, delete it when the block raises (the exception propagates)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    # mkstemp creates the file 0600; give it the mode an ordinary open() would (0666 minus the
    # umask, 0644 typically), so results on a shared cluster file system stay readable by the group.
    os.fchmod(fd, 0o666 & ~current_umask())
    os.close(fd)
    try:
        yield Path(tmp)
        _fsync_path(tmp)  # the data reaches the disk before the name points at it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_path(path: str | os.PathLike) -> None:
    """Flush a file the caller has written and closed. Opened read-only: fsync flushes the file's
    data whatever the descriptor's mode (Linux, macOS), and the file may have been made read-only."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable. Best effort: the file is already complete under
    its name either way, and some systems or file systems (Windows, some network mounts) refuse to
    open or fsync a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(root: str | os.PathLike) -> None:
    """Flush every file and folder under ``root`` (a folder built apart before it is renamed into
    place, so a power cut cannot leave it with empty files). Folders: best effort, as above."""
    for dirpath, _, files in os.walk(root):
        for name in files:
            _fsync_path(os.path.join(dirpath, name))
        _fsync_directory(Path(dirpath))


def sibling_folder(target: Path, tag: str) -> Path:
    """A new, empty, hidden folder next to ``target`` (``.<name>.<random>.<tag>``) to build its
    replacement in, with an ordinary mkdir's mode (mkdtemp makes it 0700; results are shared)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".{tag}"))
    os.chmod(folder, 0o777 & ~current_umask())
    return folder


def swap_in_folder(new: Path, target: Path) -> None:
    """Put the complete folder ``new`` (made by ``sibling_folder``) at ``target``: its files reach the
    disk first, the old ``target`` is moved aside and removed only once ``new`` is in place, and put
    back if that rename fails (a crash in between leaves it whole under its hidden name). The two
    renames leave ``target`` absent for an instant."""
    fsync_tree(new)
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
        os.replace(target, old)  # onto the empty folder mkdtemp reserved (rename may replace an empty dir)
    try:
        os.replace(new, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
