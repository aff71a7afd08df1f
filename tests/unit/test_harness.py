"""The training harness (vae.harness) on a real, tiny torch model: a stopped run keeps its last
finished epoch, a resumed one repeats an uninterrupted one exactly, saves are atomic, and a
metrics line never outlives a failed save."""

from __future__ import annotations

import json
import os
import pickle
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from vae.harness import (
    Budget,
    Every,
    Stop,
    append_line,
    line_then_save,
    run_epochs,
    save_state,
)


class Toy:
    """A linear regression trained epoch by epoch, its state saved after each epoch the way
    the project's loops save theirs: a metrics line, then the state file."""

    def __init__(self, out: Path, stop: Stop | None = None, stop_in_epoch: int = 0) -> None:
        self.out, self.stop, self.stop_in_epoch = out, stop, stop_in_epoch
        torch.manual_seed(0)
        self.model = torch.nn.Linear(4, 1)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=0.05)
        self.x = torch.randn(64, 4)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
        self.events: list[dict[str, Any]] = []
        state = self.out / "state.pt"
        self.first = 1
        if state.is_file():  # resume
            saved = torch.load(state, weights_only=True)
            self.model.load_state_dict(saved["model"])
            self.opt.load_state_dict(saved["opt"])
            self.first = saved["epoch"] + 1

    def train_epoch(self, epoch: int) -> float | None:
        gen = torch.Generator().manual_seed(epoch)  # a function of the epoch: resumable
        order, total = torch.randperm(64, generator=gen), 0.0
        for b in range(8):
            if epoch == self.stop_in_epoch and b == 3 and self.stop is not None:
                self.stop.should_stop = lambda: True
            if self.stop is not None and self.stop():
                return None
            rows = order[b * 8 : (b + 1) * 8]
            loss = torch.nn.functional.mse_loss(self.model(self.x[rows]), self.y[rows])
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            total += loss.item()
        return total / 8

    def finish(self, epoch: int, loss: float, t0: float) -> dict[str, Any]:
        record = {"event": "epoch", "epoch": epoch, "loss": loss}
        state = {"epoch": epoch, "model": self.model.state_dict(), "opt": self.opt.state_dict()}
        line_then_save(self.out / "metrics.jsonl", record,
                       lambda: save_state(self.out / "state.pt", state))  # fmt: skip
        return record

    def run(self, last: int = 4):
        return run_epochs(self.first, last, self.train_epoch, self.finish,
                          emit=self.events.append)  # fmt: skip


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_stop_keeps_the_last_epoch_and_resume_repeats_an_uninterrupted_run(tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    whole.mkdir(), cut.mkdir()
    straight = Toy(whole).run()
    assert (straight.last, straight.stopped, len(straight.history)) == (4, False, 4)

    stopped = Toy(cut, Stop(), stop_in_epoch=3)
    run = stopped.run()
    assert (run.last, run.stopped, len(run.history)) == (2, True, 2)
    assert stopped.events[-1] == {"event": "stopped", "epoch": 2,
                                  "message": "stopped after epoch 2"}  # fmt: skip
    assert torch.load(cut / "state.pt", weights_only=True)["epoch"] == 2
    assert [r["epoch"] for r in lines(cut / "metrics.jsonl")] == [1, 2]

    resumed = Toy(cut)
    assert resumed.first == 3
    rest = resumed.run()
    assert (rest.last, rest.stopped, [r["epoch"] for r in rest.history]) == (4, False, [3, 4])
    a = torch.load(whole / "state.pt", weights_only=True)["model"]
    b = torch.load(cut / "state.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit for bit
    assert lines(whole / "metrics.jsonl") == lines(cut / "metrics.jsonl")

    done = Toy(cut).run()  # nothing left to train: no epoch runs, none is lost
    assert (done.last, done.stopped, done.history) == (4, False, [])


def test_after_may_end_the_run_with_its_message(tmp_path):
    events: list[dict[str, Any]] = []
    run = run_epochs(1, 5, lambda e: e, lambda e, r, t0: {"event": "epoch", "epoch": e},
                     emit=events.append, after=lambda e: "stale" if e == 2 else None)  # fmt: skip
    assert (run.last, run.stopped) == (2, True)
    assert events == [{"event": "epoch", "epoch": 1}, {"event": "epoch", "epoch": 2},
                      {"event": "stopped", "epoch": 2, "message": "stale"}]  # fmt: skip


def test_sigterm_sets_the_stop_and_the_handler_is_given_back():
    before = signal.getsignal(signal.SIGTERM)
    stop = Stop()
    assert not stop()
    with stop.on_sigterm():
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop()
    assert signal.getsignal(signal.SIGTERM) == before
    asked = Stop(lambda: True)
    assert asked() and not asked.terminated.is_set()


def test_a_failed_save_keeps_the_previous_state_and_takes_the_line_back(tmp_path):
    state, metrics = tmp_path / "state.pt", tmp_path / "metrics.jsonl"
    model = torch.nn.Linear(3, 2)
    line_then_save(metrics, {"epoch": 1}, lambda: save_state(state, model.state_dict()))
    kept = metrics.read_bytes()

    def full_disk() -> None:
        save_state(state, {"w": torch.zeros(2)})  # written, then the next file fails
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        line_then_save(metrics, {"epoch": 2}, full_disk)
    assert metrics.read_bytes() == kept  # the line of epoch 2 is gone
    assert lines(metrics) == [{"epoch": 1}]

    # a state that cannot be pickled fails mid-write
    with pytest.raises((AttributeError, pickle.PicklingError)):
        save_state(state, {"w": torch.ones(2), "f": lambda: None})
    assert torch.equal(torch.load(state, weights_only=True)["w"], torch.zeros(2))
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"metrics.jsonl", "state.pt"}  # no temp file beside them


def test_metrics_lines_are_whole_json_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    for epoch in (1, 2):
        append_line(path, {"event": "epoch", "epoch": epoch, "loss": 0.5 / epoch})
    assert path.read_text().endswith("\n")
    assert lines(path) == [{"event": "epoch", "epoch": 1, "loss": 0.5},
                           {"event": "epoch", "epoch": 2, "loss": 0.25}]  # fmt: skip


def test_budget_and_throttle():
    budget = Budget(seconds=1000.0, max_steps=10)
    assert 0.5 <= budget.spent(5) < 0.6  # steps, not time, use it up here
    assert Budget(seconds=1e-9).spent(0) >= 1.0
    every = Every(0.5, last=0.0)
    assert [every.due(t) for t in (0.4, 0.6, 0.9, 1.2)] == [False, True, False, True]
