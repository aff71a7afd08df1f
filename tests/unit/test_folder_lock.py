"""vae.storage.folder_lock under a race (issue 23, finding 7): processes that start together on a
folder whose ``.lock`` names a dead owner never hold it at the same time."""

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vae.storage.folder_lock import LOCK_FILE, FolderLock, lock_owner

TRIALS, RACERS = 300, 3


def _race(folders: list[str], barrier, doubles, wins) -> None:
    """One racer: for each trial, start with the others, hold the lock a moment if won, and
    count a double when the "holder" file of another holder is already there."""
    for folder in folders:
        barrier.wait()
        try:
            with FolderLock(folder):
                try:
                    fd = os.open(Path(folder) / "holder", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    with doubles.get_lock():
                        doubles.value += 1
                    continue
                os.close(fd)
                with wins.get_lock():
                    wins.value += 1
                time.sleep(0.002)  # held long enough for a slower racer to act
                os.unlink(Path(folder) / "holder")
        except ValueError:
            pass  # refused: another racer holds it


@pytest.mark.slow  # 3 forked racers over 300 trials: seconds
def test_racing_processes_never_share_a_stale_lock(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    folders = []
    for i in range(TRIALS):
        folder = tmp_path / f"t{i}"
        folder.mkdir()
        (folder / LOCK_FILE).write_text(f"{dead}\n")  # a stale lock of a dead trainer
        folders.append(str(folder))
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(RACERS)
    doubles, wins = ctx.Value("i", 0), ctx.Value("i", 0)
    racers = [
        ctx.Process(target=_race, args=(folders, barrier, doubles, wins)) for _ in range(RACERS)
    ]
    for p in racers:
        p.start()
    for p in racers:
        p.join(timeout=120)
    assert all(p.exitcode == 0 for p in racers)
    assert doubles.value == 0, f"{doubles.value} of {TRIALS} trials had two holders at once"
    assert wins.value >= TRIALS  # every trial's stale lock was taken over at least once
    assert all(lock_owner(f) is None for f in folders)
