"""The training loop end to end on a tiny synthetic dataset: metrics, checkpoints, latents,
resume (also after SIGKILL), stop, divergence, locking."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from vae.audio.features import FeatureConfig
from vae.data.dataset import load_dataset, preprocess
from vae.data.sources import make_demo_set
from vae.model import checkpoints as ck
from vae.model.checkpoints import CheckpointError
from vae.model.losses import Losses, term
from vae.storage.folder_lock import FolderLock, lock_owner
from vae.training import loop
from vae.training.train import TrainingDiverged, train
from vae.training.train_config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
# 8 kHz, 4032 samples, n_fft 128, hop 64 -> 64 bins x 64 frames.
FEATURES = FeatureConfig(sample_rate=8000, clip_samples=4032, n_fft=128, hop_length=64)
TINY = {"channels": (8, 16, 32), "latent_dim": 4}
EPOCH_KEYS = {
    "event", "epoch", "train_loss", "train_recon", "train_kl", "val_loss", "val_recon",
    "val_kl", "beta", "lr", "seconds", "time",
}  # fmt: skip


def _cfg(epochs: int, **kw) -> TrainConfig:
    return TrainConfig(
        epochs=epochs, batch_size=8, beta_warmup_epochs=2, threads=1, log_every=3, **kw
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 synthetic clips in 5 labelled classes, preprocessed to 64 x 64 (30 train, 10 val)."""
    root = tmp_path_factory.mktemp("train")
    make_demo_set(root / "wavs", n_per_class=8, seed=0)
    preprocess(root / "wavs", root / "data", FEATURES, val_fraction=0.2, seed=0)
    return root / "data"


def _epochs(out: Path) -> list[dict]:
    return [r for r in ck.read_metrics(out) if r["event"] == "epoch"]


@pytest.mark.slow
def test_training_lowers_the_loss_and_writes_a_checkpoint(data: Path, tmp_path: Path) -> None:
    events: list[dict] = []
    result = train(
        data, tmp_path / "ck", train_config=_cfg(3), model_overrides=TINY, progress=events.append
    )
    assert result.epoch == 3 and not result.stopped and len(result.history) == 3
    lines = _epochs(tmp_path / "ck")
    assert [r["epoch"] for r in lines] == [1, 2, 3]
    assert all(set(r) == EPOCH_KEYS for r in lines)
    assert lines[2]["train_loss"] < lines[0]["train_loss"]
    assert lines[2]["val_recon"] < lines[0]["val_recon"]
    assert [r["beta"] for r in lines] == [0.5, 1.0, 1.0]  # warm-up over 2 epochs
    steps = [r for r in ck.read_metrics(tmp_path / "ck") if r["event"] == "step"]
    assert steps and all(np.isfinite(r["grad_norm"]) for r in steps)

    ds = load_dataset(data)
    loaded = ck.load_checkpoint(tmp_path / "ck")
    assert loaded.epoch == 3 and loaded.config["epoch"] == 3
    assert loaded.model_config.channels == (8, 16, 32) and loaded.model_config.n_labels == 0
    assert (loaded.model_config.n_bins, loaded.model_config.n_frames) == (64, 64)
    assert loaded.dataset_info["fingerprint"] == ds.fingerprint
    assert loaded.label_names == ds.label_names
    assert TrainConfig.from_dict(loaded.train_config) == _cfg(3)
    latents = ck.read_latents(tmp_path / "ck")
    assert latents["means"].shape == (len(ds), 4)
    assert latents["ids"].tolist() == ds.ids
    assert latents["labels"].tolist() == ds.label_indices.tolist()
    # The latents are the model's posterior means of every clip, in dataset order.
    feats = torch.from_numpy(np.asarray(ds.features[:5], dtype=np.float32))
    with torch.no_grad():
        mu, _ = loaded.model.encode(feats)
    np.testing.assert_allclose(latents["means"][:5], mu.numpy(), rtol=1e-4, atol=1e-5)

    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("epoch") == 3
    batch = next(e for e in events if e["event"] == "batch")
    assert batch["batches"] == 4 and batch["epoch"] == 1
    assert not (tmp_path / "ck" / ".lock").exists()


@pytest.mark.slow
def test_resume_continues_and_equals_an_uninterrupted_run(data: Path, tmp_path: Path) -> None:
    train(data, tmp_path / "whole", train_config=_cfg(4), model_overrides=TINY)
    train(data, tmp_path / "split", train_config=_cfg(2), model_overrides=TINY)
    result = train(data, tmp_path / "split", train_config=_cfg(4), resume=True)
    assert result.epoch == 4 and [r["epoch"] for r in result.history] == [3, 4]
    assert [r["epoch"] for r in _epochs(tmp_path / "split")] == [1, 2, 3, 4]
    whole, split = ck.load_checkpoint(tmp_path / "whole"), ck.load_checkpoint(tmp_path / "split")
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, split.model.state_dict()[key]), key
    losses = [[r["train_loss"] for r in _epochs(tmp_path / d)] for d in ("whole", "split")]
    assert losses[0] == losses[1]


def test_existing_checkpoint_needs_resume(data: Path, tmp_path: Path) -> None:
    train(data, tmp_path / "ck", train_config=_cfg(1), model_overrides=TINY)
    with pytest.raises(ValueError, match="already holds a checkpoint; pass --resume"):
        train(data, tmp_path / "ck", train_config=_cfg(2), model_overrides=TINY)
    assert _epochs(tmp_path / "ck")[-1]["epoch"] == 1
    (tmp_path / "dataset-like").mkdir()
    (tmp_path / "dataset-like" / "features.npy").write_bytes(b"")
    with pytest.raises(ValueError, match="not a checkpoint folder"):
        train(data, tmp_path / "dataset-like", train_config=_cfg(1))


def test_resume_without_checkpoint_starts_fresh(data: Path, tmp_path: Path) -> None:
    events: list[dict] = []
    result = train(data, tmp_path / "new", train_config=_cfg(1), model_overrides=TINY,
                   resume=True, progress=events.append)  # fmt: skip
    assert result.epoch == 1
    assert any("starting fresh" in e.get("message", "") for e in events)


def test_resume_refuses_other_data(data: Path, tmp_path: Path) -> None:
    train(data, tmp_path / "ck", train_config=_cfg(1), model_overrides=TINY)
    other = tmp_path / "other"
    preprocess(data.parent / "wavs", other, FEATURES.replace(n_fft=64), val_fraction=0.2)
    with pytest.raises(CheckpointError, match="resume with the same dataset"):
        train(other, tmp_path / "ck", train_config=_cfg(2), resume=True)


def test_stop_keeps_the_last_finished_epoch(data: Path, tmp_path: Path) -> None:
    calls = {"n": 0}

    def stop_in_epoch_2() -> bool:
        calls["n"] += 1
        return calls["n"] > 4 + 2  # 4 batches (30 clips / 8) in epoch 1, then 2 of epoch 2

    events: list[dict] = []
    result = train(data, tmp_path / "ck", train_config=_cfg(3), model_overrides=TINY,
                   should_stop=stop_in_epoch_2, progress=events.append)  # fmt: skip
    assert result.stopped and result.epoch == 1
    assert ck.load_checkpoint(tmp_path / "ck").epoch == 1
    assert any(e["event"] == "stopped" for e in events)
    result = train(data, tmp_path / "ck", train_config=_cfg(3), resume=True)
    assert [r["epoch"] for r in _epochs(tmp_path / "ck")] == [1, 2, 3]
    steps = [r["step"] for r in ck.read_metrics(tmp_path / "ck") if r["event"] == "step"]
    assert steps == [3, 6, 9, 12]  # the stopped epoch's step 6 was dropped, then redone


def test_divergence_stops_with_a_clear_error(data: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "ck"
    train(data, out, train_config=_cfg(1), model_overrides=TINY)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = loop.vae_loss

    def nan_loss(*args, **kw):
        out = real(*args, **kw)
        return dataclasses.replace(out, loss=out.loss * float("nan"))

    monkeypatch.setattr(loop, "vae_loss", nan_loss)
    message = (
        f"loss became nan in batch 1 at epoch 2; the checkpoint of epoch 1 in {out} is kept: "
        "resume it with a lower --lr (now 0.001) or a longer beta warm-up"
    )
    with pytest.raises(TrainingDiverged, match=f"^{re.escape(message)}$"):
        train(data, out, train_config=_cfg(3), resume=True)
    # The last good checkpoint is untouched (every file, byte for byte), loads, is at epoch 1
    # and holds finite weights.
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    kept = ck.load_checkpoint(out)
    assert kept.epoch == 1 and [r["epoch"] for r in _epochs(out)] == [1]
    assert all(torch.isfinite(t).all() for t in kept.model.state_dict().values())
    assert not (out / ".lock").exists() and not list(out.glob(".*.tmp"))
    # Diverging in epoch 1 leaves no checkpoint at all, and says so.
    with pytest.raises(TrainingDiverged, match="at epoch 1; no checkpoint was written"):
        train(data, tmp_path / "fresh", train_config=_cfg(2), model_overrides=TINY)
    assert not ck.has_checkpoint(tmp_path / "fresh")


def test_conditional_training(data: Path, tmp_path: Path) -> None:
    train(data, tmp_path / "ck", train_config=_cfg(1),
          model_overrides={**TINY, "conditional": True, "label_dim": 3})  # fmt: skip
    loaded = ck.load_checkpoint(tmp_path / "ck")
    assert loaded.model_config.n_labels == 5 and loaded.model_config.label_dim == 3
    assert loaded.model.sample(2, labels=4).shape == (2, 64, 64)
    with pytest.raises(ValueError, match="conditional"):
        loaded.model.sample(2)


def test_bad_overrides_and_devices(data: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown model overrides"):
        train(data, tmp_path / "a", train_config=_cfg(1), model_overrides={"dropout": 0.5})
    with pytest.raises(ValueError, match="batch_size=0"):
        TrainConfig(batch_size=0)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            train(data, tmp_path / "b", train_config=_cfg(1, device="cuda"))


def test_folder_lock(tmp_path: Path) -> None:
    assert lock_owner(tmp_path) is None
    with FolderLock(tmp_path):
        assert lock_owner(tmp_path) == os.getpid()
        with pytest.raises(ValueError, match=r"training process \d+ is writing"):
            with FolderLock(tmp_path):
                pass
    assert lock_owner(tmp_path) is None and not (tmp_path / ".lock").exists()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (tmp_path / ".lock").write_text(dead)
    assert lock_owner(tmp_path) is None  # its owner is dead
    with FolderLock(tmp_path):  # so the lock is taken over
        assert lock_owner(tmp_path) == os.getpid()


def test_lock_refuses_a_second_trainer(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "ck"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".lock").write_text(f"{sleeper.pid}\n")
        with pytest.raises(ValueError, match=f"training process {sleeper.pid} is writing"):
            train(data, out, train_config=_cfg(1), model_overrides=TINY)
    finally:
        sleeper.kill()
        sleeper.wait()
    # Its owner is now dead: the lock is stale and training proceeds.
    assert train(data, out, train_config=_cfg(1), model_overrides=TINY).epoch == 1


KILL_SCRIPT = """
import sys, time
from vae.training.train import train
from vae.training.train_config import TrainConfig
cfg = TrainConfig(epochs=4, batch_size=2, beta_warmup_epochs=2, threads=1, log_every=1)
# Sleeping in should_stop slows each batch down without changing what is trained.
train(sys.argv[1], sys.argv[2], train_config=cfg, model_overrides={"channels": (8, 16, 32),
      "latent_dim": 4}, should_stop=lambda: time.sleep(0.05) or False)
"""


def _train_until_epoch_2(data: Path, out: Path) -> subprocess.Popen:
    """Start KILL_SCRIPT in a subprocess; return once epoch 1's checkpoint is complete."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(data), str(out)], env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        # A step line of epoch 2 comes after epoch 1's checkpoint is complete.
        if any(r["epoch"] == 2 and r["event"] == "step" for r in ck.read_metrics(out)):
            break
        time.sleep(0.02)
    return proc


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "ck"
    proc = _train_until_epoch_2(data, out)
    try:
        assert proc.poll() is None, "training ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed = ck.load_checkpoint(out)
    epochs = [r["epoch"] for r in _epochs(out)]
    assert killed.epoch == epochs[-1] == 1
    assert ck.read_latents(out)["means"].shape == (40, 4)
    assert (out / ".lock").exists()  # left behind by the dead process: stale
    (out / ".model.pt.999-dead.tmp").write_bytes(b"half a file")  # as if killed mid-write

    cfg = TrainConfig(epochs=4, batch_size=2, beta_warmup_epochs=2, threads=1, log_every=1)
    result = train(data, out, train_config=cfg, resume=True)
    assert result.epoch == 4 and [r["epoch"] for r in result.history] == [2, 3, 4]
    assert [r["epoch"] for r in _epochs(out)] == [1, 2, 3, 4]
    assert not list(out.glob(".*.tmp")) and not (out / ".lock").exists()
    steps = [r["step"] for r in ck.read_metrics(out) if r["event"] == "step"]
    assert steps == list(range(1, 4 * 15 + 1))  # 30 train clips / batch 2: 15 steps an epoch
    # The kill cost time only: the result is that of an uninterrupted run.
    resumed = ck.load_checkpoint(out).model.state_dict()
    train(data, tmp_path / "whole", train_config=cfg, model_overrides=TINY)
    whole = ck.load_checkpoint(tmp_path / "whole").model.state_dict()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


@pytest.mark.slow
def test_sigterm_stops_cleanly(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "ck"
    proc = _train_until_epoch_2(data, out)
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0  # train() returned: a clean stop, not a kill
    finally:
        proc.kill()
        proc.wait()
    assert ck.load_checkpoint(out).epoch == 1
    assert [r["epoch"] for r in _epochs(out)] == [1]
    assert not (out / ".lock").exists()


def test_stage_1_does_not_resume_a_sharpened_checkpoint(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A sharpened checkpoint's model.pt has an empty optimizer: resuming stage 1 there is
    refused in one line that says why and what to do, by the library and by the CLI, and
    also when sharpen.json has gone (model.pt itself says stage 2 wrote it)."""
    from vae import cli
    from vae.training.sharpen import sharpen
    from vae.training.sharpen_config import SharpenConfig

    out = tmp_path / "ck"
    train(data, out, train_config=_cfg(1), model_overrides=TINY)
    sharpen(out, data, config=SharpenConfig(epochs=1, batch_size=8, threads=1, shift_frames=2))
    weights = (out / ck.WEIGHTS_FILE).read_bytes()
    refusal = (
        r"has been sharpened \(stage 2\), so stage 1 cannot resume: the model.pt sharpen wrote "
        r"has an empty optimizer.*train into a new --out, or continue sharpening with "
        rf"`python -m vae sharpen {re.escape(str(out))} --resume --epochs N`"
    )
    with pytest.raises(ValueError, match=refusal) as refused:
        train(data, out, train_config=_cfg(3), resume=True)
    assert "\n" not in str(refused.value)

    assert cli.main(["train", str(data), "--out", str(out), "--resume", "--epochs", "3"]) == 1
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and said[0].startswith("error: ") and "stage 1 cannot resume" in said[0]

    (out / "sharpen.json").unlink()
    with pytest.raises(ValueError, match=refusal):
        train(data, out, train_config=_cfg(3), resume=True)
    assert (out / ck.WEIGHTS_FILE).read_bytes() == weights  # nothing trained, nothing written
    assert [r["epoch"] for r in _epochs(out)] == [1]


def test_the_stage_files_are_part_of_a_checkpoint_folder(data: Path, tmp_path: Path) -> None:
    """sharpen.pt, sharpen.json and .lock (with job.json and train.log) are a checkpoint
    folder's own: a folder holding only those is no foreign folder, and a fresh run there
    drops the stage files of the model that is gone."""
    from vae.training import sharpen
    from vae.training.train import JOB_FILES, STAGE_FILES

    assert STAGE_FILES == (sharpen.STATE_FILE, sharpen.RECORD_FILE)  # named twice: kept equal
    out = tmp_path / "ck"
    out.mkdir()
    for name in (*STAGE_FILES, *JOB_FILES):
        (out / name).write_text("{}")
    assert train(data, out, train_config=_cfg(1), model_overrides=TINY).epoch == 1
    assert not any((out / name).exists() for name in STAGE_FILES)
    for name in (ck.WEIGHTS_FILE, ck.CONFIG_FILE):
        (out / name).unlink()
    for name in (*STAGE_FILES, ".lock", "notes.txt"):  # .lock: a dead writer's
        (out / name).write_text("99999999")
    with pytest.raises(ValueError, match=r"not a checkpoint folder \(holds notes.txt") as refused:
        train(data, out, train_config=_cfg(1), model_overrides=TINY)
    assert "sharpen" not in str(refused.value) and ".lock" not in str(refused.value)


def test_a_new_loss_term_reaches_the_metrics_lines_and_the_chart(
    data: Path, tmp_path: Path, monkeypatch
) -> None:
    """A field added to Losses (and its value in vae_loss) is summed, reduced, averaged and
    written as ``<name>`` in step lines and ``train_<name>``/``val_<name>`` in epoch lines,
    after the existing keys, and drawn as one more panel of the loss chart."""
    from ui import figures

    @dataclasses.dataclass(frozen=True)
    class WithExtra(Losses):
        extra: Any = term("extra", unit="nats")

    real = loop.vae_loss

    def with_extra(*args, **kw):
        out = real(*args, **kw)
        return WithExtra(**out.as_dict(), extra=out.kl * 2)

    monkeypatch.setattr(loop, "Losses", WithExtra)
    monkeypatch.setattr(loop, "vae_loss", with_extra)
    out = tmp_path / "ck"
    train(data, out, train_config=_cfg(1), model_overrides=TINY)
    lines = ck.read_metrics(out)
    epoch = next(r for r in lines if r["event"] == "epoch")
    assert set(epoch) == EPOCH_KEYS | {"train_extra", "val_extra"}
    assert list(epoch)[2:10] == [
        "train_loss", "train_recon", "train_kl", "train_extra",
        "val_loss", "val_recon", "val_kl", "val_extra",
    ]  # fmt: skip
    assert epoch["train_extra"] == pytest.approx(2 * epoch["train_kl"])
    assert epoch["val_extra"] == pytest.approx(2 * epoch["val_kl"])
    step = next(r for r in lines if r["event"] == "step")
    assert list(step)[5:10] == ["loss", "recon", "kl", "extra", "beta"]
    assert step["extra"] == pytest.approx(2 * step["kl"])

    monkeypatch.setattr(figures, "LOSS_TERMS", WithExtra.described())
    fig = figures.loss_curves(lines)
    assert [a.text for a in fig.layout.annotations] == [
        "total", "reconstruction", "KL", "extra"
    ]  # fmt: skip
    val = [t for t in fig.data if t.name == "val"]
    assert len(val) == 4 and list(val[3].y) == [epoch["val_extra"]]
