"""What is on disk: listing checkpoint folders for the pickers."""

from __future__ import annotations

from pathlib import Path

import torch

from vae import checkpoints as ck
from vae.features import FeatureConfig
from vae.model import ConvVAE, ModelConfig
from vae.workspace import list_checkpoints

FEATURES = FeatureConfig(sample_rate=8000, clip_samples=4032, n_fft=128, hop_length=64)


def _save(path: Path) -> None:
    cfg = ModelConfig(*FEATURES.shape, channels=(4, 8), latent_dim=5, n_labels=0)
    model = ConvVAE(cfg)
    ck.save_checkpoint(
        path,
        model=model,
        optimizer=torch.optim.Adam(model.parameters()),
        epoch=3,
        feature_config=FEATURES,
        model_config=cfg,
        train_config={},
        label_names=[],
        dataset_info={"path": "/data/x", "fingerprint": "abc123"},
    )


def test_list_checkpoints(tmp_path: Path) -> None:
    _save(tmp_path / "one")
    (tmp_path / "not-a-checkpoint").mkdir()
    [item] = list_checkpoints(tmp_path)
    assert (item.path, item.kind) == (tmp_path / "one", "checkpoint")
    assert item.summary == "epoch 3, latent 5, unconditional"
    assert list_checkpoints(tmp_path / "missing") == []
