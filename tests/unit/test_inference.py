"""The Synthesiser's interactive pieces: clips by id, one point of a path, whole morphs."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from vae.data.dataset import load_dataset
from vae.synthesis import latent
from vae.synthesis.inference import Synthesiser, companion_dataset


@pytest.fixture(scope="module")
def synth_and_data(studio_root):
    synth = Synthesiser.load(studio_root / "checkpoints" / "demo")
    return synth, load_dataset(studio_root / "data" / "demo")


def test_clip_from_dataset_carries_its_features_wave_and_label(synth_and_data):
    synth, ds = synth_and_data
    clip_id = ds.ids[7]
    clip = synth.clip_from_dataset(ds, clip_id)
    np.testing.assert_array_equal(clip.features.numpy(), ds.features[7].astype(np.float32))
    np.testing.assert_array_equal(clip.wave, ds.waveforms[7])
    assert synth.label_names[clip.label] == ds.labels[7]
    assert synth.clip_from_dataset(ds, clip_id, label=ds.label_names[0]).label == 0
    with pytest.raises(ValueError, match="no clip with id"):
        synth.clip_from_dataset(ds, "nope")


def test_blend_ends_are_the_reconstructions_and_middle_matches_the_path(synth_and_data):
    synth, ds = synth_and_data
    a, b = synth.clip_from_dataset(ds, ds.ids[0]), synth.clip_from_dataset(ds, ds.ids[-1])
    assert a.label != b.label  # the label moves along the path too
    recon_a = synth.reconstruct(a.features.unsqueeze(0), [a.label])[0]
    z0, f0 = synth.blend(a, b, 0.0)
    torch.testing.assert_close(f0, recon_a, atol=1e-5, rtol=0)
    codes, feats = synth.interpolate(a, b, 5, "slerp")
    z, mid = synth.blend(a, b, 0.5, "slerp")
    torch.testing.assert_close(z, codes[2], atol=1e-5, rtol=0)
    torch.testing.assert_close(mid, feats[2], atol=1e-5, rtol=0)
    assert not torch.allclose(mid, f0)
    with pytest.raises(ValueError, match="alpha=1.5"):
        synth.blend(a, b, 1.5)


def test_morph_crossfades_every_step_into_one_clip(synth_and_data):
    synth, ds = synth_and_data
    a, b = synth.clip_from_dataset(ds, ds.ids[0]), synth.clip_from_dataset(ds, ds.ids[5])
    waves, morph = synth.morph(a, b, 4, fade_seconds=0.05)
    n, fade = synth.config.clip_samples, int(0.05 * synth.config.sample_rate)
    assert waves.shape == (4, n)
    assert np.abs(waves).max(axis=1) == pytest.approx([0.99] * 4, abs=1e-3)
    assert morph.shape == (4 * n - 3 * fade,)
    assert np.isfinite(morph).all()
    np.testing.assert_allclose(morph[: n - fade], waves[0][: n - fade], atol=1e-6)


def test_directions_round_trip_and_move_one_axis_at_a_time():
    rng = np.random.default_rng(0)
    means = rng.standard_normal((200, 6)) * np.array([5, 3, 1, 0.5, 0.2, 0.1])
    centre, dirs, spread = latent.principal_directions(means.astype(np.float32), 3)
    amounts = np.array([1.0, -2.0, 0.5], np.float32)
    code = latent.along_directions(centre, dirs, spread, amounts)
    assert code.shape == (6,)
    np.testing.assert_allclose(latent.to_directions(code, centre, dirs, spread), amounts, atol=1e-5)
    one = latent.along_directions(centre, dirs, spread, np.array([1.0, 0, 0], np.float32))
    assert np.linalg.norm(one - centre) == pytest.approx(spread[0], rel=1e-5)


def test_companion_dataset_prefers_the_pick_then_the_training_set(synth_and_data, tmp_path):
    synth, ds = synth_and_data
    ckpt, trained = synth.checkpoint, Path(synth.checkpoint.dataset_info["path"])
    assert companion_dataset(ckpt).root == ds.root  # the one it was trained on
    assert companion_dataset(ckpt, tmp_path / "nothing-here").root == ds.root
    opened = []

    def load(path: Path):
        opened.append(path)
        return ds

    assert companion_dataset(ckpt, trained, load=load) is ds and opened == [trained]

    # the training set gone: none, whatever the flags
    gone = dataclasses.replace(ckpt, dataset_info={**ckpt.dataset_info, "path": str(tmp_path)})
    assert companion_dataset(gone) is None
    assert companion_dataset(gone, trained, same_clips=True).root == ds.root

    # same features but other clips: fits for sound, not for latents.npz rows
    other = dataclasses.replace(ckpt, dataset_info={**ckpt.dataset_info, "fingerprint": "x"})
    assert companion_dataset(other, trained).root == ds.root
    assert companion_dataset(other, trained, same_clips=True) is None

    def broken(path: Path):
        raise ValueError(f"{path}: torn")

    assert companion_dataset(ckpt, trained, load=broken) is None
