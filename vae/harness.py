"""What every training loop of the project shares: the epoch loop, the stop check, the time
budget, the metrics line and the atomic save of state.

The VAE (stage 1, :mod:`vae.training.loop`), its sharpening (stage 2,
:mod:`vae.training.sharpen`), the judge (:mod:`vae.evaluation.judge_training`) and the vocoder
(:mod:`vae.vocoder.training`) each keep their own batches, losses and files; this module holds
the parts they would otherwise write four times. It imports only :mod:`vae.storage` and
:mod:`vae.progress`, so every package that trains can import it without a cycle.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from vae.progress import OnEvent, ignore_event
from vae.storage.files import raise_if_disk_full, write_atomically

R = TypeVar("R")  # what one epoch's batches hand to the epoch's finish


# ------------------------------------------------------------------------------ stopping


def never() -> bool:
    """A stop check that never asks to stop."""
    return False


class Stop:
    """The stop check of a run: True once SIGTERM came (inside :meth:`on_sigterm`) or the
    caller's ``should_stop`` says so. Loops poll it between batches and keep the last
    finished epoch."""

    def __init__(self, should_stop: Callable[[], bool] | None = None) -> None:
        self.should_stop = should_stop
        self.terminated = threading.Event()

    def __call__(self) -> bool:
        return self.terminated.is_set() or (self.should_stop is not None and self.should_stop())

    @contextlib.contextmanager
    def on_sigterm(self) -> Iterator[None]:
        """While the block runs, SIGTERM (the app's Stop, `kill`; torchrun passes it on to
        every rank) sets :attr:`terminated`. Only the main thread may set handlers; elsewhere
        SIGTERM is left alone."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old = signal.signal(signal.SIGTERM, lambda *_: self.terminated.set())
        try:
            yield
        finally:  # None: a handler not set from Python; give back the default
            signal.signal(signal.SIGTERM, old or signal.SIG_DFL)


# ------------------------------------------------------------------------------ the epochs


@dataclass
class EpochsRun:
    """What :func:`run_epochs` did: the last finished epoch (``first - 1`` when none), the
    records of the epochs it finished, and whether it stopped before ``last``."""

    last: int
    history: list[dict[str, Any]]
    stopped: bool


def run_epochs(
    first: int,
    last: int,
    train: Callable[[int], R | None],
    finish: Callable[[int, R, float], dict[str, Any]],
    *,
    emit: OnEvent = ignore_event,
    stopped: Callable[[int], str] = lambda done: f"stopped after epoch {done}",
    after: Callable[[int], str | None] | None = None,
) -> EpochsRun:
    """Epochs ``first`` .. ``last``: ``train(epoch)`` runs the batches (None: it was asked to
    stop), ``finish(epoch, result, t0)`` validates, saves and returns the epoch's record,
    which is then emitted; ``after(epoch)`` (a judge) may end the run with a message.

    A resumed run passes ``first`` = the saved epoch + 1; when that is past ``last`` no epoch
    runs. A stop emits {"event": "stopped", "epoch": the last finished, "message"}, the
    message from ``stopped(last finished)`` or from ``after``.
    """
    history: list[dict[str, Any]] = []
    done = first - 1
    for epoch in range(first, last + 1):
        t0 = time.perf_counter()
        result = train(epoch)
        if result is None:
            emit({"event": "stopped", "epoch": done, "message": stopped(done)})
            return EpochsRun(done, history, True)
        history.append(finish(epoch, result, t0))
        done = epoch
        emit(history[-1])
        message = after(epoch) if after is not None else None
        if message is not None:
            emit({"event": "stopped", "epoch": done, "message": message})
            return EpochsRun(done, history, True)
    return EpochsRun(done, history, False)


# ------------------------------------------------------------------------------ time


@dataclass
class Budget:
    """A time budget of ``seconds`` (and at most ``max_steps`` steps, 0: no cap) started at
    construction: :meth:`spent` is the share used, 1.0 or more when training must end."""

    seconds: float
    max_steps: int = 0
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self, now: float | None = None) -> float:
        return (time.perf_counter() if now is None else now) - self.started

    def spent(self, step: int) -> float:
        """The share of the budget used after ``step`` steps: the larger of time and steps."""
        share = self.elapsed() / self.seconds
        return max(share, step / self.max_steps) if self.max_steps else share


@dataclass
class Every:
    """A throttle for progress events: :meth:`due` is True at most once every ``seconds``
    (counted from construction or the last True)."""

    seconds: float
    last: float = field(default_factory=time.perf_counter)

    def due(self, now: float | None = None) -> bool:
        now = time.perf_counter() if now is None else now
        if now - self.last < self.seconds:
            return False
        self.last = now
        return True


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's CPU threads set to ``n`` (None: left alone) while the block runs."""
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def cpu_count() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# ------------------------------------------------------------------------------ the files


def save_state(path: str | Path, state: Any) -> Path:
    """``torch.save`` of ``state`` to ``path`` atomically: a kill or a full disk leaves the
    previous file (or none), never half of one.

    Raises:
        DiskFullError: out of space; the previous file is kept.
    """
    return write_atomically(path, lambda f: torch.save(state, f))


def append_line(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON line to a metrics file and fsync it, so a reader never sees a line
    that may vanish.

    Raises:
        DiskFullError: out of space (a torn last line is skipped by readers and dropped on
            resume).
    """
    try:
        with Path(path).open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        raise_if_disk_full(err, path)
        raise


def line_then_save(
    metrics: Path,
    record: dict[str, Any],
    save: Callable[[], object],
    forget: Callable[[], None] = lambda: None,
) -> None:
    """The epoch's metrics line ``record``, then ``save()`` (the state files); a save that
    fails (out of space) takes the line back first, cutting the file to its length before
    it: a truncation needs no free space, where rewriting the file fails on the very disk
    that stopped the save. When even that fails, ``forget()`` tidies as it can.

    Raises:
        OSError: the save failed; the line is gone.
    """
    before = metrics.stat().st_size if metrics.is_file() else 0
    try:
        append_line(metrics, record)
        save()
    except OSError:  # the epoch's line must not claim a state that is not there
        if not _cut_back(metrics, before):
            forget()
        raise


def _cut_back(metrics: Path, size: int) -> bool:
    """Cut ``metrics`` back to ``size`` bytes; False when it did not (or could not) grow."""
    try:
        if metrics.is_file() and metrics.stat().st_size > size:
            os.truncate(metrics, size)
            return True
    except OSError:
        pass
    return False
