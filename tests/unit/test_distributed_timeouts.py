"""vae.training.distributed without a second process: the process-group timeout read from the
environment, and a collective that failed because a peer vanished turned into one line."""

from __future__ import annotations

from datetime import timedelta

import pytest
import torch.distributed as tdist

from vae.training import distributed as dist

TWO = dist.World(rank=1, size=2, local_rank=0, local_size=1)


def test_timeout_defaults_to_ten_minutes_and_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(dist.TIMEOUT_ENV, raising=False)
    assert dist.timeout() == timedelta(seconds=600)
    monkeypatch.setenv(dist.TIMEOUT_ENV, "45")
    assert dist.timeout() == timedelta(seconds=45)
    for bad in ("0", "-3", "1.5", "soon"):
        monkeypatch.setenv(dist.TIMEOUT_ENV, bad)
        with pytest.raises(ValueError, match=f"VAE_DIST_TIMEOUT='{bad}' must be a whole number"):
            dist.timeout()


def test_a_vanished_peer_becomes_one_line_naming_the_checkpoint_and_resume() -> None:
    gloo = "[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:547] Connection closed by peer"
    for err in (RuntimeError(f"{gloo} [10.0.0.2]:5\nmore"), tdist.DistBackendError("NCCL error")):
        with pytest.raises(dist.PeerLost) as caught, dist.peer_watch(TWO, "ck/out"):
            raise err
        text = str(caught.value)
        assert "\n" not in text and text.startswith("rank 1: another process or machine")
        assert "ck/out keeps the last finished epoch" in text and "--resume on every" in text


def test_other_errors_and_one_process_pass_through() -> None:
    for world, err in [
        (TWO, RuntimeError("the loss became NaN")),
        (TWO, dist.RankFailed("rank 0 failed: ValueError: x")),
        (TWO, ValueError("Connection closed by peer")),  # not a RuntimeError: ours
        (dist.World(), RuntimeError("Connection closed by peer")),
    ]:
        with pytest.raises(type(err)) as caught, dist.peer_watch(world, "out"):
            raise err
        assert caught.value is err
