"""The learned prior: a mixture per label fitted to the codes of real clips, stored safely,
used by sampling in place of N(0, I)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from vae.model.prior import ALL, PRIOR_FILE, fit_prior, read_prior, write_prior


def _clusters(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three labels, each two tight blobs in 4-D, far from the origin and from each other."""
    rng = np.random.default_rng(seed)
    means, labels = [], []
    for label in range(3):
        for blob in range(2):
            centre = np.zeros(4)
            centre[label] = 6.0
            centre[3] = 3.0 * (2 * blob - 1)
            means.append(centre + 0.1 * rng.standard_normal((60, 4)))
            labels += [label] * 60
    return np.concatenate(means).astype(np.float32), np.array(labels)


def test_samples_of_a_label_land_on_that_labels_codes_not_between_them() -> None:
    means, labels = _clusters()
    prior = fit_prior(means, labels, conditional=True)
    assert set(prior.mixtures) == {0, 1, 2, ALL}
    for label in range(3):
        z = prior.sample(500, label, seed=1)  # (500, 4)
        assert z.shape == (500, 4) and z.dtype == np.float32
        # Every draw lies near one of its label's two blobs: within 1.0 of a training code.
        mine = means[labels == label]
        nearest = np.sqrt(((z[:, None, :] - mine[None]) ** 2).sum(-1)).min(1)
        assert np.percentile(nearest, 99) < 1.0
        # Both blobs are used: the mixture did not collapse onto one of them.
        assert 0.3 < (z[:, 3] > 0).mean() < 0.7
    # N(0, I) would put almost every draw far from all of them.
    normal = np.random.default_rng(0).standard_normal((500, 4))
    assert np.sqrt(((normal[:, None] - means[None]) ** 2).sum(-1)).min(1).mean() > 2.0


def test_temperature_scales_the_spread_and_seeds_repeat() -> None:
    means, labels = _clusters()
    prior = fit_prior(means, labels, conditional=True)
    np.testing.assert_array_equal(prior.sample(8, 1, seed=3), prior.sample(8, 1, seed=3))
    at_zero = prior.sample(200, 1, temperature=0.0, seed=3)
    assert len(np.unique(at_zero.round(4), axis=0)) <= 4  # only component means
    wide, narrow = prior.sample(2000, 1, 2.0, seed=4), prior.sample(2000, 1, 0.5, seed=4)
    assert wide[:, 1].std() > 2.5 * narrow[:, 1].std()


def test_an_unconditional_prior_has_one_mixture_over_every_clip() -> None:
    means, labels = _clusters()
    prior = fit_prior(means, -np.ones_like(labels), conditional=False)
    assert prior is not None and list(prior.mixtures) == [ALL]
    assert prior.sample(3, label=5).shape == (3, 4)  # unknown labels fall back to ALL


def test_too_few_clips_give_no_prior() -> None:
    assert fit_prior(np.zeros((1, 4)), np.array([0]), conditional=True) is None


def test_written_and_read_back_it_draws_the_same_codes(tmp_path: Path) -> None:
    means, labels = _clusters()
    prior = fit_prior(means, labels, conditional=True)
    write_prior(tmp_path, prior)
    back = read_prior(tmp_path, latent_dim=4)
    assert back is not None
    for label in (0, 2, ALL):
        np.testing.assert_allclose(back.sample(5, label, seed=9), prior.sample(5, label, seed=9))
    assert read_prior(tmp_path / "nowhere", 4) is None


@pytest.mark.parametrize(
    "damage",
    ["garbage", "wrong_dim", "nan", "pickled"],
)
def test_a_damaged_prior_file_is_refused_naming_the_file(tmp_path: Path, damage: str) -> None:
    means, labels = _clusters()
    write_prior(tmp_path, fit_prior(means, labels, conditional=True))
    file = tmp_path / PRIOR_FILE
    if damage == "garbage":
        file.write_bytes(b"PK\x03\x04 not really a zip")
    elif damage == "wrong_dim":
        pass  # read with another latent size below
    else:
        with np.load(file, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        if damage == "nan":
            arrays["mu0"] = arrays["mu0"] * np.nan
        else:
            arrays["mu0"] = np.array([{"evil": 1}], dtype=object)
        np.savez(file, **arrays)
    with pytest.raises(ValueError, match=PRIOR_FILE) as err:
        read_prior(tmp_path, latent_dim=7 if damage == "wrong_dim" else 4)
    assert "delete it" in str(err.value)


def test_training_writes_a_prior_and_sampling_uses_it(studio_root: Path, tmp_path: Path) -> None:
    from vae.synthesis.inference import Synthesiser

    ckpt = tmp_path / "demo"
    shutil.copytree(studio_root / "checkpoints" / "demo", ckpt)
    assert (ckpt / PRIOR_FILE).is_file()
    synth = Synthesiser.load(ckpt)
    assert synth.prior is not None
    z = synth.sample_codes(50, synth.label_names[0], seed=0).numpy()
    # The prior is fitted to the label's training codes: its draws sit near their mean.
    from vae.model.checkpoints import read_latents

    lat = read_latents(ckpt)
    mine = lat["means"][lat["labels"] == 0]
    assert np.abs(z.mean(0) - mine.mean(0)).max() < 3 * mine.std(0).max() + 1e-3
    codes, feats = synth.sample(4, synth.label_names[0], seed=0)
    assert feats.shape[0] == 4 and codes.shape == (4, synth.latent_dim)
    # Without the file it falls back to N(0, I).
    (ckpt / PRIOR_FILE).unlink()
    plain = Synthesiser.load(ckpt)
    assert plain.prior is None
    normal = plain.sample_codes(2000, plain.label_names[0], seed=0).numpy()
    assert abs(normal.std() - 1.0) < 0.05
