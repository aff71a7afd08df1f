"""Exclusive use of a checkpoint folder: one training process writes it at a time.

The lock is ``fcntl.flock`` on a ``.lock`` file holding the owner's pid: the kernel lets one
process hold it and frees it when that process dies, so a stale owner's file is simply
taken over, never deleted by a rival (reading the owner, then deleting its file, could
remove a newer owner's lock: two holders). The owner deletes the file itself when it lets
go, while still holding it; so whoever wins the flock checks that the file it holds is still
the one at ``.lock`` (same inode) and otherwise tries again. The pid is for people and for
``vae.jobs.runner``, which reads it to tell whether a run is alive. A live pid in a file nobody
holds (written by an older version, or by hand) is still respected.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from vae.storage.files import pid_alive

LOCK_FILE = ".lock"
# A lock held by no live pid is an owner starting up (between its flock and its write) or
# lock_owner() looking: tried again for this long before it is refused as "(starting)".
STARTING_SECONDS = 2.0


def _recorded_pid(fd: int) -> int | None:
    """The pid written in the open lock file, if it is a number."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _live(pid: int | None) -> int | None:
    return pid if pid is not None and pid_alive(pid) else None


def lock_owner(folder: str | Path) -> int | None:
    """Pid of the live process training into ``folder`` (0: one starting up), else None."""
    try:
        fd = os.open(Path(folder) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # held: by the pid written, or by an owner about to write it
            return _live(_recorded_pid(fd)) or 0
        try:
            return _live(_recorded_pid(fd))  # nobody holds it: only an older version's pid
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class FolderLock:
    """Exclusive use of a checkpoint folder: ``flock`` on its ``.lock`` file, which holds the
    owner's pid. A lock whose owner is dead is free again (the kernel dropped it)."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / LOCK_FILE
        self._fd: int | None = None

    def _busy(self, pid: int | None) -> ValueError:
        return ValueError(
            f"{self.path.parent}: training process {pid or '(starting)'} is writing "
            f"this checkpoint; wait for it or stop it, or choose another --out "
            f"(delete {self.path} if no such training runs)"
        )

    def _take(self) -> int | None:
        """One attempt: the open, flocked ``.lock`` file, or None to try again (it was
        deleted or replaced while we waited, or a rival is starting or only looking)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _live(_recorded_pid(fd))
                if pid is not None:
                    raise self._busy(pid) from None
                os.close(fd)
                return None
            try:
                held, there = os.fstat(fd), os.stat(self.path)
            except FileNotFoundError:  # its owner deleted it as it let go
                os.close(fd)
                return None
            if (held.st_dev, held.st_ino) != (there.st_dev, there.st_ino):
                os.close(fd)
                return None
            pid = _live(_recorded_pid(fd))
            if pid is not None and pid != os.getpid():  # an older version's live owner
                raise self._busy(pid)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)  # closing drops a flock taken above
            raise
        return fd

    def __enter__(self) -> FolderLock:
        deadline = time.monotonic() + STARTING_SECONDS
        while (fd := self._take()) is None:
            if time.monotonic() > deadline:
                raise self._busy(None)
            time.sleep(0.01)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # no pid: free, whoever reads it before it goes
            self.path.unlink(missing_ok=True)  # still held: no rival holds this path's file
        finally:
            os.close(fd)  # drops the flock
