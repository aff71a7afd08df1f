"""vae.storage.limits: every size read from a file is bounded before it is allocated, and `.npy`
headers are read without the data they declare."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from vae.audio.features import PRESETS, FeatureConfig
from vae.model.conv_vae import MODEL_SIZES, ModelConfig, check_model_size
from vae.storage import limits

TINY = FeatureConfig(sample_rate=8000, clip_samples=4096, n_fft=256, hop_length=128)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_and_model_size_is_within_the_limits(preset: str) -> None:
    cfg = FeatureConfig.from_dict(PRESETS[preset].to_dict())
    for channels in MODEL_SIZES.values():
        model = ModelConfig(*cfg.shape, channels=channels, latent_dim=64, n_labels=10)
        assert ModelConfig.from_dict(model.to_dict()) == model
        assert check_model_size(model) <= limits.MAX_PARAMETERS


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"n_fft": 2**30, "clip_samples": 2**30, "hop_length": 2**29}, "n_fft=1073741824"),
        ({"sample_rate": 10**9}, "sample_rate"),
        ({"clip_samples": 2**30}, "clip_samples"),
        ({"n_mels": 10**6}, "n_mels"),
        ({"top_db": 1e9}, "top_db"),
        ({"griffin_lim_iters": 10**9}, "griffin_lim_iters"),
        ({"hop_length": 1, "clip_samples": 2**20, "n_fft": 2**14}, "spectrogram cells"),
    ],
)
def test_feature_configs_beyond_the_limits_are_refused_before_use(change, field) -> None:
    with pytest.raises(limits.LimitError, match=field):
        FeatureConfig.from_dict({**TINY.to_dict(), **change})
    assert issubclass(limits.LimitError, ValueError)  # what every caller already catches


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"n_labels": 10**6}, "n_labels"),
        ({"latent_dim": 10**6}, "latent_dim"),
        ({"label_dim": 10**6}, "label_dim"),
        ({"channels": [8, 10**6]}, "channels"),
        ({"n_bins": 10**5, "n_frames": 10**5}, "cells"),
        ({"n_bins": 1024, "n_frames": 1024, "channels": [1024, 16]}, "feature map"),
    ],
)
def test_model_configs_beyond_the_limits_are_refused_before_use(change, field) -> None:
    base = ModelConfig(*TINY.shape, channels=(8, 16), latent_dim=4).to_dict()
    with pytest.raises(limits.LimitError, match=field):
        ModelConfig.from_dict({**base, **change})


def test_parameters_are_counted_without_building_the_model() -> None:
    # 1024 channels, 256 x 256 features, a 1024-d code: every field within its own limit,
    # but 500 M parameters (2 GB): refused at once, nothing allocated.
    big = ModelConfig(256, 256, channels=(4, 16, 64, 256, 1024), latent_dim=1024)
    with pytest.raises(limits.LimitError, match="parameters"):
        ModelConfig.from_dict(big.to_dict())


def test_label_names_are_bounded_and_match_a_conditional_model() -> None:
    assert limits.check_label_names(["a", 1], 2) == ["a", "1"]
    assert limits.check_label_names(["a"], 0) == ["a"]  # unconditional: any count
    with pytest.raises(limits.LimitError, match="1,000,000 names"):
        limits.check_label_names([""] * 1_000_000, 0)
    with pytest.raises(limits.LimitError, match="2 names for a model of n_labels=3"):
        limits.check_label_names(["a", "b"], 3)
    with pytest.raises(limits.LimitError, match="not a list"):
        limits.check_label_names("abc", 0)


def test_npy_headers_are_read_without_the_data(tmp_path: Path) -> None:
    file = tmp_path / "a.npy"
    np.save(file, np.zeros((3, 5), np.float16))
    assert limits.npy_file_header(file) == ((3, 5), np.dtype(np.float16))
    # A header declaring 2**40 rows over a few bytes of data: refused from the header alone.
    with file.open("r+b") as f:
        header = np.lib.format.header_data_from_array_1_0(np.zeros((3, 5), np.float16))
        f.seek(0)
        np.lib.format.write_array_header_1_0(f, {**header, "shape": (2**40, 5)})
    with pytest.raises(limits.LimitError, match=r"a.npy: declares \(1099511627776, 5\)"):
        limits.npy_file_header(file)
    file.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(limits.LimitError, match="a.npy: unreadable array"):
        limits.npy_file_header(file)


def test_npz_headers_refuse_objects_oversize_and_zip_bombs(tmp_path: Path) -> None:
    good = tmp_path / "good.npz"
    np.savez(good, means=np.zeros((4, 3), np.float32), ids=np.array(["a", "b", "c", "d"]))
    assert limits.npz_headers(good) == {
        "means": ((4, 3), np.dtype(np.float32)),
        "ids": ((4,), np.dtype("<U1")),
    }
    with pytest.raises(limits.LimitError, match="good.npz: no array 'labels'"):
        limits.npz_headers(good, ("means", "labels"))
    objects = tmp_path / "objects.npz"
    np.savez(objects, means=np.array([[1], "x"], dtype=object))
    with pytest.raises(limits.LimitError, match="objects.npz: means: object dtype"):
        limits.npz_headers(objects)
    bomb = tmp_path / "bomb.npz"  # 8 MiB of zeros deflate to about 8 KiB
    np.savez_compressed(bomb, means=np.zeros((1 << 19, 4), np.float32))
    with pytest.raises(limits.LimitError, match="bomb.npz: means declares .* a zip bomb"):
        limits.npz_headers(bomb)
    huge = tmp_path / "huge.npz"  # a header alone, declaring 512 MiB
    with zipfile.ZipFile(huge, "w") as zf, zf.open("means.npy", "w") as f:
        header = {"descr": "<f4", "fortran_order": False, "shape": (2**23, 16)}
        np.lib.format.write_array_header_1_0(f, header)
    with pytest.raises(limits.LimitError, match=r"huge.npz: means declares \(8388608, 16\)"):
        limits.npz_headers(huge)
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(limits.LimitError, match="junk.npz: unreadable .npz"):
        limits.npz_headers(tmp_path / "junk.npz")


def test_check_finite_names_the_file_and_the_tensor() -> None:
    state = {"a.weight": torch.ones(3), "steps": torch.tensor([1]), "b.bias": torch.ones(2)}
    limits.check_finite(state, Path("m.pt"))
    state["b.bias"][1] = float("inf")
    with pytest.raises(limits.LimitError, match="m.pt: tensor 'b.bias' holds NaN or inf"):
        limits.check_finite(state, Path("m.pt"))


def test_max_weights_bytes_follows_the_model() -> None:
    assert limits.max_weights_bytes(1000) == 16_000 + (16 << 20)
    assert limits.max_weights_bytes(limits.MAX_PARAMETERS) == limits.MAX_WEIGHTS_BYTES
