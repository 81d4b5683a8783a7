"""One ``onebp train`` per run directory: an exclusive ``flock`` on a lock file inside it, taken before
anything in the directory is written or deleted.

Without it a second ``onebp train --out`` on a directory in use would rewrite ``config.json``,
``env.json`` and ``run_state.json`` before noticing anything, and the first run would finish
labelled with the second's settings. ``run_state.json`` cannot decide this: a killed process leaves
it saying "running". The kernel's lock can: it is released when its holder exits, however it exits
(SIGKILL included), so a stale marker never blocks a resume.

The lock file (``.onebp-run.lock``) is opened relative to the directory's descriptor with
``O_NOFOLLOW`` (a symlink planted under that name is refused, never followed and truncated), and
holds the holder's pid and host for the refusal message. It is deleted on release, while still
locked; a process that locked a file which was deleted meanwhile sees that the name no longer
points at its file and tries again, so two processes never hold two different files of one name.

On NFS, Linux maps ``flock`` to the server's byte-range locks, so runs on two hosts exclude each
other too. A file system without locks at all gets a warning and an unguarded run, as before.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
import sys
import time
from pathlib import Path
from types import TracebackType

from onebp.errors import UserError

LOCK_NAME = ".onebp-run.lock"
#: flock errors that mean "this file system has no locks", not "someone holds it"
UNSUPPORTED = frozenset(e for e in (getattr(errno, n, None) for n in ("ENOLCK", "EOPNOTSUPP", "ENOTSUP", "ENOSYS"))
                        if e is not None)


class RunDirectoryBusy(UserError):
    """Another process holds the run directory's lock."""


class RunLock:
    """The exclusive lock on one run directory (created if missing). Use as a context manager, or
    ``acquire()``/``release()``; the lock is also released when the process ends."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.dir = Path(run_dir)
        self.path = self.dir / LOCK_NAME
        self.created: list[Path] = []  # directories this lock made (removed again if left empty)
        self._fd: int | None = None
        self._dir_fd: int | None = None
        self.unguarded = False  # the file system cannot lock: the run goes on without (a warning said so)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        if self._fd is not None or self.unguarded:
            return self
        self._make_dir()
        try:
            try:
                self._dir_fd = os.open(self.dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            except OSError as exc:
                raise UserError(f"{self.dir}: cannot open the run directory ({exc.strerror})") from None
            # A few tries: each retry means a holder released (and deleted) the file between our
            # open and our flock, which is rare; a busy directory is refused at once.
            for _ in range(20):
                fd = self._open_lock_file()
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    busy = exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
                    message = self._busy_message(fd) if busy else ""
                    os.close(fd)
                    if busy:
                        raise RunDirectoryBusy(message) from None
                    if exc.errno in UNSUPPORTED:
                        # Some cluster file systems (Lustre mounted without flock, some FUSE
                        # mounts) cannot lock at all. Refusing every run there would stop all work
                        # over a protection; train unguarded as before the lock, and say so.
                        print(f"onebp: warning: {self.dir}: this file system cannot lock files "
                              f"({exc.strerror}); a second `onebp train` on this directory would not "
                              "be refused", file=sys.stderr)
                        self.unguarded = True
                        self._close_dir()
                        return self
                    raise UserError(f"{self.path}: cannot lock ({exc.strerror})") from None
                if self._still_named(fd):
                    self._fd = fd
                    self._write_holder()
                    return self
                os.close(fd)  # locked a file its holder had just deleted: take the new one
            raise UserError(f"{self.path}: the lock file keeps being replaced; is another process "
                            "deleting it?")
        except BaseException:
            self._close_dir()
            self._remove_created()
            raise

    def release(self) -> None:
        """Delete the lock file (still holding the lock), unlock, and remove the directory again if
        this lock created it and nothing else was written there."""
        if self._fd is None:
            self.unguarded = False
            return
        try:
            if self._still_named(self._fd):
                os.unlink(LOCK_NAME, dir_fd=self._dir_fd)
        except OSError:
            pass  # a lock file left behind is harmless: the next run locks and reuses it
        os.close(self._fd)  # closing the last descriptor releases the flock
        self._fd = None
        self._close_dir()
        self._remove_created()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    # -- internals -------------------------------------------------------------------------------

    def _make_dir(self) -> None:
        """Create the directory and any missing parents, remembering which (removed again by
        ``release`` if nothing was written there)."""
        missing = []
        d = self.dir
        while not d.exists() and not d.is_symlink() and d != d.parent:
            missing.append(d)
            d = d.parent
        try:
            for d in reversed(missing):
                try:
                    d.mkdir()
                    self.created.append(d)
                except FileExistsError:
                    pass  # made meanwhile by another process: not ours to remove
            if not self.dir.is_dir():
                raise UserError(f"{self.dir}: exists and is not a directory")
        except OSError as exc:
            raise UserError(f"{self.dir}: cannot create the run directory ({exc.strerror})") from None

    def _open_lock_file(self) -> int:
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(LOCK_NAME, flags, 0o644, dir_fd=self._dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UserError(f"{self.path}: is a symbolic link; refusing to follow it (delete it)") from None
            raise UserError(f"{self.path}: cannot open the lock file ({exc.strerror})") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UserError(f"{self.path}: is not a regular file; refusing to use it as the run's lock")
        return fd

    def _still_named(self, fd: int) -> bool:
        """The lock file's name still points at the file ``fd`` holds."""
        try:
            named = os.stat(LOCK_NAME, dir_fd=self._dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)

    def _write_holder(self) -> None:
        # Informational only (the flock decides): who to name when another process is refused.
        assert self._fd is not None
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, info.encode() + b"\n", 0)
        except OSError:
            pass

    def _busy_message(self, fd: int) -> str:
        holder = ""
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
            if isinstance(info, dict) and info.get("pid"):
                holder = f" (pid {info['pid']} on {info.get('host', 'an unknown host')})"
        except (OSError, ValueError):
            pass
        return (f"{self.dir}: another `onebp train` is using this run directory{holder}; "
                "wait for it to finish, or use another --out")

    def _remove_created(self) -> None:
        for d in reversed(self.created):  # the run directory first, then the parents it needed
            try:
                d.rmdir()  # only succeeds when empty: a refused start leaves no directory behind
            except OSError:
                break
        self.created = []

    def _close_dir(self) -> None:
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None
