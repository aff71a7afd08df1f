"""Checkpoint folders: atomic writes, save -> load equality, refusing unsafe or broken files."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.pickle_trap import Trap
from vae.audio.features import FeatureConfig
from vae.model import checkpoints as ck
from vae.model.checkpoints import CheckpointError
from vae.model.conv_vae import ConvVAE, ModelConfig

FEATURES = FeatureConfig(sample_rate=8000, clip_samples=4032, n_fft=128, hop_length=64)
LABELS = ["a", "b", "c"]


def _save(path: Path, epoch: int = 3, n_labels: int = 3) -> tuple[ConvVAE, ModelConfig]:
    torch.manual_seed(1)
    cfg = ModelConfig(*FEATURES.shape, channels=(4, 8), latent_dim=5, n_labels=n_labels)
    model = ConvVAE(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = model(torch.rand(2, *FEATURES.shape), [0, 1])[0].sum()
    loss.backward()
    opt.step()  # so the optimizer has state worth saving
    ck.save_checkpoint(
        path,
        model=model,
        optimizer=opt,
        epoch=epoch,
        feature_config=FEATURES,
        model_config=cfg,
        train_config={"epochs": 10, "lr": 1e-3},
        label_names=LABELS,
        dataset_info={"path": "/data/x", "fingerprint": "abc123"},
        extra={"step": 42},
    )
    return model, cfg


def test_atomic_writes_replace_whole_files_and_leave_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.txt"
    ck.atomic_write_text(target, "first")
    ck.atomic_write_text(target, "second")
    assert target.read_text() == "second"

    def failing(f) -> None:
        f.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        ck.write_atomically(target, failing)
    assert target.read_text() == "second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.txt"]
    ck.atomic_torch_save({"w": torch.ones(2)}, tmp_path / "t.pt")
    assert torch.load(tmp_path / "t.pt", weights_only=True)["w"].tolist() == [1.0, 1.0]


def test_save_then_load_gives_the_same_model(tmp_path: Path) -> None:
    model, cfg = _save(tmp_path / "ck")
    loaded = ck.load_checkpoint(tmp_path / "ck")
    assert loaded.model_config == cfg and loaded.feature_config == FEATURES
    assert loaded.label_names == LABELS and loaded.epoch == 3
    assert loaded.train_config == {"epochs": 10, "lr": 1e-3}
    assert loaded.dataset_info == {"path": "/data/x", "fingerprint": "abc123"}
    assert not loaded.model.training
    saved = model.state_dict()
    assert saved.keys() == loaded.model.state_dict().keys()
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, saved[key]), key
    model.eval()
    z = torch.randn(4, 5)
    with torch.no_grad():
        assert torch.equal(loaded.model.decode(z, [0, 1, 2, 0]), model.decode(z, [0, 1, 2, 0]))
    assert loaded.state["step"] == 42 and loaded.state["optimizer"]["state"]
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert config["epoch"] == 3 and config["format_version"] == 1
    assert config["model_config"]["channels"] == [4, 8]
    assert {"created", "updated", "versions", "dataset"} <= set(config)


def test_created_survives_later_saves(tmp_path: Path) -> None:
    _save(tmp_path / "ck", epoch=1)
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    config["created"] = "2000-01-01T00:00:00+00:00"
    (tmp_path / "ck" / "config.json").write_text(json.dumps(config))
    _save(tmp_path / "ck", epoch=2)
    again = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert again["created"] == "2000-01-01T00:00:00+00:00" and again["epoch"] == 2


def test_pickled_objects_are_refused_and_never_run(tmp_path: Path) -> None:
    _save(tmp_path / "ck")
    marker = tmp_path / "code-ran"
    state = torch.load(tmp_path / "ck" / "model.pt", weights_only=True)
    torch.save({**state, "payload": Trap(marker)}, tmp_path / "ck" / "model.pt")
    with pytest.raises(CheckpointError, match="refused"):
        ck.load_checkpoint(tmp_path / "ck")
    assert not marker.exists()
    pickle.loads(pickle.dumps(Trap(marker)))  # the trap is real: plain unpickling runs it
    assert marker.exists()


def test_truncated_or_garbage_weights_are_a_clear_error(tmp_path: Path) -> None:
    _save(tmp_path / "ck")
    weights = tmp_path / "ck" / "model.pt"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        ck.load_checkpoint(tmp_path / "ck")
    weights.write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        ck.load_checkpoint(tmp_path / "ck")
    weights.write_bytes(b"")
    with pytest.raises(CheckpointError, match=str(weights)):
        ck.load_checkpoint(tmp_path / "ck")


def test_unknown_versions_are_refused(tmp_path: Path) -> None:
    _save(tmp_path / "ck")
    config_file = tmp_path / "ck" / "config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "format_version": 2}))
    with pytest.raises(CheckpointError, match="format_version 2 is not supported"):
        ck.load_checkpoint(tmp_path / "ck")
    config_file.write_text(json.dumps(config))
    state = torch.load(tmp_path / "ck" / "model.pt", weights_only=True)
    torch.save({**state, "format_version": 7}, tmp_path / "ck" / "model.pt")
    with pytest.raises(CheckpointError, match="weights format_version 7"):
        ck.load_checkpoint(tmp_path / "ck")


def test_missing_parts_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint folder"):
        ck.load_checkpoint(tmp_path / "nowhere")
    _save(tmp_path / "ck")
    (tmp_path / "ck" / "model.pt").unlink()
    with pytest.raises(CheckpointError, match=r"ck: incomplete checkpoint, missing model\.pt"):
        ck.load_checkpoint(tmp_path / "ck")
    (tmp_path / "ck" / "config.json").write_text("{ torn")
    with pytest.raises(CheckpointError, match="not readable JSON"):
        ck.load_checkpoint(tmp_path / "ck")
    assert issubclass(CheckpointError, ValueError)


def test_weights_that_do_not_fit_the_config(tmp_path: Path) -> None:
    _save(tmp_path / "ck")
    config_file = tmp_path / "ck" / "config.json"
    config = json.loads(config_file.read_text())
    config["model_config"]["latent_dim"] = 7
    config_file.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="do not fit the model"):
        ck.load_checkpoint(tmp_path / "ck")


def test_check_compatible(tmp_path: Path) -> None:
    _save(tmp_path / "ck")
    loaded = ck.load_checkpoint(tmp_path / "ck")
    ck.check_compatible(loaded, FEATURES, "dataset d")
    ck.check_compatible(loaded, FEATURES.replace(griffin_lim_iters=64), "dataset d")  # synthesis
    with pytest.raises(CheckpointError, match=r"n_fft 128 vs 256.*re-preprocess") as err:
        ck.check_compatible(loaded, FEATURES.replace(n_fft=256), "dataset d")
    assert "dataset d" in str(err.value) and str(tmp_path / "ck") in str(err.value)
    assert FEATURES.fingerprint() in str(err.value)


def test_latents_round_trip_without_pickles(tmp_path: Path) -> None:
    means = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    ids = ["a/1", "b/ü", "c", "d#2"]
    ck.write_latents(tmp_path, means, np.array([0, 1, -1, 2]), ids)
    back = ck.read_latents(tmp_path)
    np.testing.assert_array_equal(back["means"], means)
    assert back["labels"].dtype == np.int64 and back["labels"].tolist() == [0, 1, -1, 2]
    assert back["ids"].dtype.kind == "U" and back["ids"].tolist() == ids
    with np.load(tmp_path / "latents.npz", allow_pickle=False) as data:
        assert set(data.files) == {"means", "labels", "ids"}
    with pytest.raises(ValueError, match="need"):
        ck.write_latents(tmp_path, means, np.zeros(3), ids)
    (tmp_path / "latents.npz").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="unreadable"):
        ck.read_latents(tmp_path)


def _bad_latents(tmp_path: Path, **arrays: object) -> Path:
    np.savez(tmp_path / "latents.npz", **arrays)
    return tmp_path


Z, LAB, IDS = np.zeros((4, 5), np.float32), np.zeros(4, np.int64), np.array(list("abcd"))
OBJECTS = np.empty(4, dtype=object)
OBJECTS[:] = [[0.0] * 5] * 4


@pytest.mark.parametrize(
    ("arrays", "why"),
    [
        ({"means": OBJECTS, "labels": LAB, "ids": IDS}, "means: object dtype"),
        (
            {"means": Z[:, :3], "labels": LAB, "ids": IDS},
            r"means of shape \(4, 3\) for latent_dim 5",
        ),
        (
            {"means": Z[:, 0], "labels": LAB, "ids": IDS},
            r"means of shape \(4,\), not \(N",
        ),
        ({"means": Z + np.nan, "labels": LAB, "ids": IDS}, "means hold NaN or inf"),
        ({"means": Z, "labels": LAB, "ids": IDS[:2]}, r"ids of shape \(2,\) for 4 means"),
        ({"means": Z, "labels": LAB[:3], "ids": IDS}, r"labels of shape \(3,\) for 4 means"),
        ({"means": Z[:0], "labels": LAB[:0], "ids": IDS[:0]}, "means of 0 rows"),
        ({"means": Z, "labels": LAB + 3, "ids": IDS}, r"labels outside -1..2"),
        (
            {"means": Z, "labels": LAB.astype(np.float32), "ids": IDS},
            "labels of dtype float32, not integer",
        ),
        ({"means": Z, "ids": IDS}, "no array 'labels'"),
    ],
)
def test_bad_latents_are_refused_naming_the_file_and_what_is_wrong(
    tmp_path: Path, arrays: dict, why: str
) -> None:
    _save(tmp_path)  # latent_dim 5, three label names
    _bad_latents(tmp_path, **arrays)
    with pytest.raises(CheckpointError, match=f"{tmp_path / 'latents.npz'}: {why}"):
        ck.read_latents(tmp_path)


def test_nan_weights_are_refused_at_load_naming_the_tensor(tmp_path: Path) -> None:
    _save(tmp_path)
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    state["model"]["to_stats.bias"][0] = float("nan")
    torch.save(state, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="model.pt: tensor 'to_stats.bias' holds NaN"):
        ck.load_checkpoint(tmp_path)


def test_weights_far_bigger_than_their_model_are_refused_unread(tmp_path: Path) -> None:
    _save(tmp_path)
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    torch.save({**state, "pad": torch.zeros(5 << 20)}, tmp_path / "model.pt")  # 20 MiB
    with pytest.raises(CheckpointError, match="model.pt: .* bytes, more than the"):
        ck.load_checkpoint(tmp_path)


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (lambda c: c["feature_config"].update(n_fft=2**30, clip_samples=2**30), "n_fft"),
        (lambda c: c.update(label_names=[""] * 1_000_000), "label_names: 1,000,000"),
        (lambda c: c.update(label_names=["a"]), "1 names for a model of n_labels=3"),
        (lambda c: c["model_config"].update(n_labels=10**6), "n_labels=1000000"),
    ],
)
def test_config_fields_beyond_the_limits_name_the_config(tmp_path: Path, edit, why) -> None:
    _save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    edit(config)
    (tmp_path / "config.json").write_text(json.dumps(config, separators=(",", ":")))
    with pytest.raises(CheckpointError, match=f"config.json: bad config .*{why}"):
        ck.load_checkpoint(tmp_path)


def test_a_deeply_nested_config_is_one_clear_error(tmp_path: Path) -> None:
    tmp_path.joinpath("config.json").write_text("[" * 100_000 + "]" * 100_000)
    tmp_path.joinpath("model.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="config.json: not readable JSON .*nested too deep"):
        ck.load_checkpoint(tmp_path)


def test_metrics_reader_skips_torn_lines_and_trim_drops_later_epochs(tmp_path: Path) -> None:
    for epoch in (1, 2, 3):
        ck.append_jsonl(tmp_path / "metrics.jsonl", {"event": "step", "epoch": epoch})
        ck.append_jsonl(tmp_path / "metrics.jsonl", {"event": "epoch", "epoch": epoch})
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"event": "step", "ep')  # a writer killed mid-line
    assert [r["epoch"] for r in ck.read_metrics(tmp_path)] == [1, 1, 2, 2, 3, 3]
    assert ck.trim_metrics(tmp_path, 2) == 3
    assert [r["epoch"] for r in ck.read_metrics(tmp_path)] == [1, 1, 2, 2]
    assert ck.trim_metrics(tmp_path, 2) == 0


def test_metrics_from_elsewhere_are_read_within_a_bound(tmp_path: Path) -> None:
    file = tmp_path / "metrics.jsonl"
    lines = ['{"epoch": 1}', "[" * 100_000, *(f'{{"epoch": {e}}}' for e in range(2, 2000))]
    file.write_text("\n".join(lines) + "\n")
    assert [r["epoch"] for r in ck.read_metrics(file)] == list(range(1, 2000))
    tail = ck.read_metrics(file, max_bytes=140)  # about ten lines from the end, none cut
    assert [r["epoch"] for r in tail] == list(range(2000 - len(tail), 2000))
    assert 5 <= len(tail) <= 10


def test_pack_checkpoint_zips_what_loading_needs(studio_root, tmp_path):
    import zipfile

    from vae.model.checkpoints import CheckpointError, load_checkpoint, pack_checkpoint

    data = pack_checkpoint(studio_root / "checkpoints" / "demo")
    zip_path = tmp_path / "demo.zip"
    zip_path.write_bytes(data)
    with zipfile.ZipFile(zip_path) as zf:
        names = sorted(zf.namelist())
        zf.extractall(tmp_path / "unzipped")
    assert names == [
        f"demo/{n}"
        for n in sorted(["config.json", "latents.npz", "metrics.jsonl", "model.pt", "prior.npz"])
    ]
    loaded = load_checkpoint(tmp_path / "unzipped" / "demo")
    original = load_checkpoint(studio_root / "checkpoints" / "demo")
    for key, value in original.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value)
    with pytest.raises(CheckpointError, match="no checkpoint here yet"):
        pack_checkpoint(tmp_path)


def test_the_packed_vocoder_names_are_the_vocoder_modules_own() -> None:
    """write_checkpoint_zip spells the vocoder's file names out (importing vae.vocoder.network would
    make a cycle); this keeps the two spellings one."""
    import inspect

    from vae.model import checkpoints
    from vae.vocoder import network as vocoder

    source = inspect.getsource(checkpoints.write_checkpoint_zip)
    for name in (vocoder.WEIGHTS_FILE, vocoder.CONFIG_FILE):
        assert f'"{vocoder.VOCODER_DIR}/{name}"' in source
