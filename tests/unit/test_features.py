"""Feature extraction and inversion: shapes, ranges, global normalisation, Griffin-Lim."""

import dataclasses

import numpy as np
import pytest
import torch

from vae.audio import features as F
from vae.audio.metrics import spectral_convergence


def speechlike(cfg: F.FeatureConfig, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a moving pitch and an envelope: enough structure to invert."""
    rng = np.random.default_rng(seed)
    t = np.arange(cfg.clip_samples) / cfg.sample_rate
    f0 = 120 + 60 * np.sin(2 * np.pi * 1.5 * t) + rng.uniform(0, 40)
    phase = 2 * np.pi * np.cumsum(f0) / cfg.sample_rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = np.sin(np.pi * t / t[-1]) ** 2
    return (wave * env).astype(np.float32)


@pytest.mark.parametrize("name,shape", [("seed", (256, 64)), ("fsdd", (128, 128))])
def test_preset_shapes(name, shape):
    cfg = F.get_preset(name)
    feats = F.waveform_to_features(speechlike(cfg), cfg)
    assert tuple(feats.shape) == shape == cfg.shape
    assert feats.min() >= 0 and feats.max() <= 1 and feats.max() > 0.8


def test_music_preset_is_segmented():
    cfg = F.get_preset("music")
    assert cfg.segment == "chunks" and cfg.shape == (512, 256)
    assert cfg.clip_seconds == pytest.approx(5.94, abs=0.001)


def test_normalisation_is_global_not_per_file():
    cfg = F.get_preset("fsdd")
    wave = speechlike(cfg)
    loud, quiet = F.waveform_to_features(wave, cfg), F.waveform_to_features(wave * 0.01, cfg)
    torch.testing.assert_close(loud, quiet, atol=1e-4, rtol=0)  # each clip is peak-normalised
    # A quiet band stays quiet relative to full scale: values are not stretched to [0, 1].
    sine = np.sin(2 * np.pi * 1000 * np.arange(cfg.clip_samples) / cfg.sample_rate)
    feats = F.waveform_to_features(sine.astype(np.float32), cfg)
    assert feats.max() == pytest.approx(1.0, abs=0.01)
    assert (feats[:, 5] < 0.5).float().mean() > 0.9  # most bins far below the tone


def test_batched_equals_one_by_one():
    cfg = F.get_preset("fsdd")
    waves = np.stack([speechlike(cfg, s) for s in range(3)])
    batch = F.waveform_to_features(waves, cfg)
    for i in range(3):
        torch.testing.assert_close(batch[i], F.waveform_to_features(waves[i], cfg))


def test_features_to_magnitude_inverts_the_mapping():
    cfg = F.get_preset("seed")
    mag = F.stft_magnitude(torch.from_numpy(speechlike(cfg)), cfg)
    mag = mag / mag.max() * 50  # keep it above the floor mostly
    feats = F.magnitude_to_features(mag, cfg)
    back = F.features_to_magnitude(feats, cfg)
    keep = feats[:, :] > 0.01
    torch.testing.assert_close(back[:-1][keep], mag[:-1][keep], rtol=1e-3, atol=1e-3)
    assert torch.all(back[-1] == 0)  # the dropped Nyquist bin comes back silent


@pytest.mark.parametrize("name", ["seed", "fsdd"])
def test_griffin_lim_round_trip_beats_zero_phase(name):
    cfg = F.get_preset(name)
    waves = np.stack([speechlike(cfg, s) for s in range(4)])
    feats = F.waveform_to_features(waves, cfg)
    ref = F.features_to_magnitude(feats, cfg)
    gl = F.stft_magnitude(F.features_to_waveform(feats, cfg), cfg)
    zero = F.stft_magnitude(F.zero_phase_waveform(feats, cfg), cfg)
    sc_gl, sc_zero = spectral_convergence(ref, gl), spectral_convergence(ref, zero)
    assert sc_gl.median() < 0.15
    assert sc_zero.median() > 3 * sc_gl.median()
    assert F.features_to_waveform(feats, cfg).shape == (4, cfg.clip_samples)


def test_griffin_lim_is_deterministic():
    cfg = F.get_preset("fsdd")
    feats = F.waveform_to_features(speechlike(cfg), cfg)
    assert torch.equal(F.features_to_waveform(feats, cfg), F.features_to_waveform(feats, cfg))


def test_mel_bins_round_trip_shape():
    cfg = F.get_preset("fsdd").replace(n_mels=64)
    feats = F.waveform_to_features(speechlike(cfg), cfg)
    assert feats.shape == (64, cfg.n_frames)
    wave = F.features_to_waveform(feats, cfg)
    assert wave.shape == (cfg.clip_samples,) and torch.isfinite(wave).all()


def test_config_validation_and_serialisation():
    cfg = F.get_preset("fsdd")
    assert F.FeatureConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.fingerprint() != cfg.replace(hop_length=32).fingerprint()
    with pytest.raises(ValueError, match="hop_length=0"):
        cfg.replace(hop_length=0)
    with pytest.raises(ValueError, match="format_version 99"):
        F.FeatureConfig.from_dict({**cfg.to_dict(), "format_version": 99})
    with pytest.raises(ValueError, match="unknown feature config fields"):
        F.FeatureConfig.from_dict({**cfg.to_dict(), "colour": "red"})
    with pytest.raises(ValueError, match="unknown preset 'jazz'"):
        F.get_preset("jazz")
    assert dataclasses.is_dataclass(cfg)


@pytest.mark.parametrize(
    "cfg,kind,rows",
    [
        (F.get_preset("seed"), "linear", 256),  # Nyquist dropped: 512 / 2
        (F.get_preset("fsdd").replace(drop_last_bin=False), "linear", 129),
        (F.get_preset("fsdd").replace(n_mels=40), "mel", 40),
    ],
)
def test_one_row_count_the_feature_types(cfg, kind, rows):
    """The rows of a feature array are counted once, by the config's feature type: the
    analysis makes that many, the inverse takes them back to every STFT bin, the figure's
    axis names as many, and a filter-bank type's pseudo-inverse maps them."""
    assert cfg.feature_type is F.FEATURE_TYPES[kind] and cfg.n_bins == rows
    feats = F.waveform_to_features(speechlike(cfg), cfg)
    assert feats.shape == (rows, cfg.n_frames) == cfg.shape
    assert F.features_to_magnitude(feats, cfg).shape == (cfg.n_stft_bins, cfg.n_frames)
    centres, _ = cfg.feature_type.axis(cfg)
    assert len(centres) == rows
    inverse = F.bank_inverse(cfg)
    assert (inverse is None) == (kind == "linear")
    if inverse is not None:
        assert inverse.shape == (cfg.n_stft_bins, rows)
    # The power route (preprocessing) and the magnitude route give the same features.
    power = F.stft_power(torch.from_numpy(speechlike(cfg)), cfg)
    torch.testing.assert_close(
        F.power_to_features(power, cfg),
        F.magnitude_to_features(power.sqrt(), cfg),
        atol=1e-5,
        rtol=0,
    )


def test_feature_types_are_asked_in_order_linear_last():
    """A config selects the first type that claims it; linear bins take every other."""
    assert list(F.FEATURE_TYPES)[-1] == "linear"
    cfg = F.get_preset("fsdd")
    assert [name for name, k in F.FEATURE_TYPES.items() if k.selected(cfg)] == ["linear"]
    assert cfg.replace(n_mels=32).feature_types() == ["mel"]
    assert F.FeatureConfig.from_dict(cfg.to_dict()) == cfg


def test_the_framed_stft_is_torch_stft():
    """One framed STFT (the features' and the judge's): torch.stft(center=True), Hann."""
    wave = torch.from_numpy(speechlike(F.get_preset("fsdd")))
    want = torch.stft(wave, 256, 64, window=torch.hann_window(256), center=True,
                      pad_mode="reflect", return_complex=True)  # fmt: skip
    torch.testing.assert_close(F.framed_stft(wave, 256, 64), want.T, atol=1e-4, rtol=1e-4)


def test_settings_that_ask_for_two_feature_types_are_refused(monkeypatch):
    """A second registered type that claims the same config: refused in one line naming
    both, rather than one silently winning."""
    monkeypatch.setitem(F.FEATURE_TYPES, "other", dataclasses.replace(F.MEL, name="other"))
    with pytest.raises(ValueError, match=r"ask for 2 feature types \(mel, other\): choose one"):
        F.get_preset("fsdd").replace(n_mels=32)
    assert F.get_preset("fsdd").replace(drop_last_bin=False).feature_types() == []
