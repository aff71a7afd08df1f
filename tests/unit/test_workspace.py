"""What is on disk: listing checkpoint folders for the pickers."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vae import checkpoints as ck
from vae import workspace
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


def test_a_config_nested_too_deep_is_listed_as_damaged(tmp_path: Path) -> None:
    folder = tmp_path / "deep"
    folder.mkdir()
    (folder / ck.WEIGHTS_FILE).write_bytes(b"")
    (folder / ck.CONFIG_FILE).write_text("[" * 100_000 + "]" * 100_000)
    [item] = list_checkpoints(tmp_path)  # was a RecursionError on every page
    assert item.summary.startswith("damaged: config.json is not readable JSON")


def test_a_config_out_of_range_is_listed_as_damaged(tmp_path: Path) -> None:
    _save(tmp_path / "one")
    config = tmp_path / "one" / ck.CONFIG_FILE
    info = json.loads(config.read_text())
    info["feature_config"]["hop_length"] = 0
    config.write_text(json.dumps(info))
    [item] = list_checkpoints(tmp_path)
    assert item.summary.startswith("damaged: config.json holds a bad config (hop_length=0")


def test_a_summary_is_made_once_per_change_on_disk(tmp_path: Path, monkeypatch) -> None:
    _save(tmp_path / "one")
    reads = []
    real = workspace.read_json
    monkeypatch.setattr(workspace, "read_json", lambda file: reads.append(file) or real(file))
    assert list_checkpoints(tmp_path)[0].summary == "epoch 3, latent 5, unconditional"
    assert list_checkpoints(tmp_path)[0].summary == "epoch 3, latent 5, unconditional"
    assert len(reads) == 1  # the second listing took the kept summary
    config = tmp_path / "one" / ck.CONFIG_FILE
    config.write_text(config.read_text().replace('"epoch": 3', '"epoch": 4'))
    assert list_checkpoints(tmp_path)[0].summary == "epoch 4, latent 5, unconditional"
    assert len(reads) == 2
