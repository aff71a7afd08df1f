"""Stage 2 (``python -m vae sharpen``) on a tiny real run: it trains only the decoder, its
losses stay finite, the folder stays a loadable checkpoint, and a SIGKILL at any save is
resumed to the weights of an uninterrupted run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.integration.test_crash_safety import FEATURES, TINY, _cfg, _error_line, _kill_at, _run
from vae.data.dataset import preprocess
from vae.data.sources import make_demo_set
from vae.model import checkpoints as ck
from vae.synthesis.inference import Synthesiser
from vae.training.sharpen import RECORD_FILE, STATE_FILE, sharpen
from vae.training.sharpen_config import SharpenConfig
from vae.training.train import train

ARGS = ["--epochs", "3", "--batch-size", "8", "--threads", "1", "--shift-frames", "4"]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A conditional tiny VAE trained 2 epochs on 20 demo clips (16 train, 4 val)."""
    root = tmp_path_factory.mktemp("sharpen")
    make_demo_set(root / "wavs", n_per_class=4, seed=0)
    preprocess(root / "wavs", root / "data", FEATURES, val_fraction=0.2, seed=0)
    train(root / "data", root / "ckpt", train_config=_cfg(2),
          model_overrides={**TINY, "conditional": True})  # fmt: skip
    return {"data": root / "data", "ckpt": root / "ckpt"}


def _copy(base: dict[str, Path], tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    shutil.copytree(base["ckpt"], out)
    return out


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return ck.load_checkpoint(folder).model.state_dict()


def test_sharpen_trains_the_decoder_only_and_keeps_a_checkpoint(
    base: dict[str, Path], tmp_path: Path
) -> None:
    out = _copy(base, tmp_path, "a")
    before = _weights(out)
    latents = (out / ck.LATENTS_FILE).read_bytes()
    cfg = SharpenConfig(epochs=2, batch_size=8, threads=1, shift_frames=4)
    result = sharpen(out, base["data"], config=cfg)
    assert result.stage_epoch == 2 and not result.stopped
    lines = [r for r in ck.read_metrics(out) if r["event"] == "sharpen"]
    assert [r["epoch"] for r in lines] == [3, 4]  # counting on from stage 1's 2 epochs
    for line in lines:
        for key in ("critic", "adversarial", "features", "spectral", "val_spectral"):
            assert np.isfinite(line[key]), (key, line)
        assert line["spectral"] > 0 and line["critic"] >= 0
    after = _weights(out)
    assert ck.load_checkpoint(out).epoch == 4
    frozen = [k for k in before if not k.startswith(("decoder.", "from_code."))]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)  # encoder, labels
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    assert (out / ck.LATENTS_FILE).read_bytes() == latents  # the map keeps its meaning
    synth = Synthesiser.load(out)
    _, feats = synth.sample(3, synth.label_names[0], seed=0)
    assert feats.shape == (3, 64, 64) and torch.isfinite(feats).all()
    assert (out / STATE_FILE).is_file() and (out / RECORD_FILE).is_file()


@pytest.mark.slow  # a stage epoch, then two CLI runs in fresh Pythons
def test_sharpen_refuses_a_begun_stage_without_resume_and_a_missing_checkpoint(
    base: dict[str, Path], tmp_path: Path
) -> None:
    out = _copy(base, tmp_path, "b")
    sharpen(out, base["data"], config=SharpenConfig(epochs=1, batch_size=8, threads=1))
    code, log = _run(["sharpen", str(out), "--epochs", "2"], tmp_path)
    assert code == 1
    assert _error_line(log) == (
        f"error: {out}: already sharpened for 1 stage epochs; pass --resume to continue "
        "(with more --epochs)"
    )
    code, log = _run(["sharpen", str(tmp_path / "nothing")], tmp_path)
    assert code == 1 and "no checkpoint to sharpen" in _error_line(log)


@pytest.mark.slow
@pytest.mark.parametrize("spot", ["replace:sharpen.pt:2", "replace:model.pt:2"])
def test_sharpen_killed_resumes_to_the_uninterrupted_weights(
    base: dict[str, Path], tmp_path: Path, spot: str
) -> None:
    """SIGKILL just before stage epoch 2's sharpen.pt (the epoch is lost) or its model.pt
    (sharpen.pt is ahead of model.pt), then --resume: the same weights as a run never killed."""
    whole, killed = _copy(base, tmp_path, "whole"), _copy(base, tmp_path, "killed")
    code, log = _run(["sharpen", str(whole), "--data", str(base["data"]), *ARGS], tmp_path)
    assert code == 0, log
    args = ["sharpen", str(killed), "--data", str(base["data"]), *ARGS]
    _kill_at(args, spot, tmp_path)
    assert ck.load_checkpoint(killed).epoch == 3  # stage epoch 1 is kept
    code, log = _run([*args, "--resume"], tmp_path)
    assert code == 0, log
    want, got = _weights(whole), _weights(killed)
    assert ck.load_checkpoint(killed).epoch == 5
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5, msg=key)
    stages = [r["stage_epoch"] for r in ck.read_metrics(killed) if r["event"] == "sharpen"]
    assert stages == [1, 2, 3]
