"""Exclusive use of a checkpoint folder: one training process writes it at a time.

The lock is an O_EXCL ``.lock`` file holding the owner's pid; a lock whose owner is dead is
stale and taken over. ``vae.train`` holds it for a whole run, ``vae.jobs`` reads it to tell
whether a run is alive.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from vae.storage import pid_alive

LOCK_FILE = ".lock"


def lock_owner(folder: str | Path) -> int | None:
    """Pid of the live process training into ``folder`` (0: one starting up), else None."""
    lock = Path(folder) / LOCK_FILE
    try:
        text = lock.read_text().strip()
        age = time.time() - lock.stat().st_mtime
    except OSError:
        return None
    if not text.isdigit():
        return 0 if age < 10 else None  # an owner may be between its create and its write
    return int(text) if pid_alive(int(text)) else None


class FolderLock:
    """Exclusive use of a checkpoint folder: an O_EXCL ``.lock`` file holding the owner's pid.

    A lock whose owner is dead is stale and taken over.
    """

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / LOCK_FILE

    def __enter__(self) -> FolderLock:
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pid = lock_owner(self.path.parent)
                if pid is not None:
                    raise ValueError(
                        f"{self.path.parent}: training process {pid or '(starting)'} is writing "
                        f"this checkpoint; wait for it or stop it, or choose another --out "
                        f"(delete {self.path} if no such training runs)"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its owner is dead
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            return self
        raise ValueError(f"{self.path}: could not take the lock; try again")

    def __exit__(self, *exc: object) -> None:
        if lock_owner(self.path.parent) == os.getpid():
            self.path.unlink(missing_ok=True)
