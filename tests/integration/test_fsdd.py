"""Real speech: the spoken digits from ../shared (every test skips where they are absent)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from vae.audio import features as F
from vae.audio.metrics import fine_structure, spectral_convergence, waveform_fine_structure
from vae.data.dataset import load_dataset, preprocess
from vae.data.reader import load_clips
from vae.evaluation.evaluate import evaluate_reconstruction
from vae.synthesis.inference import Clip, Synthesiser
from vae.training.train import train
from vae.training.train_config import TrainConfig


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["fsdd", "seed"])
def test_griffin_lim_round_trip_on_fsdd(preset, fsdd_recordings):
    cfg = F.get_preset(preset)
    files = sorted(fsdd_recordings.glob("*.wav"))[::50]  # 60 clips: every digit and speaker
    clips = np.stack([load_clips(f, cfg)[0][1] for f in files])
    feats = F.waveform_to_features(clips, cfg)  # (60, bins, frames)
    ref = F.features_to_magnitude(feats, cfg)
    gl = F.stft_magnitude(F.features_to_waveform(feats, cfg), cfg)
    zero = F.stft_magnitude(F.zero_phase_waveform(feats, cfg), cfg)
    sc_gl = spectral_convergence(ref, gl).median().item()
    sc_zero = spectral_convergence(ref, zero).median().item()
    assert sc_gl < 0.10, f"Griffin-Lim median spectral convergence {sc_gl:.3f}"
    assert sc_zero > 0.5, f"zero-phase baseline {sc_zero:.3f} should be far worse"
    assert torch.isfinite(gl).all()


def test_blurred_real_speech_has_less_fine_structure(fsdd_recordings):
    """The figure the stage-2 study leads with, on real recordings: a 3 x 3 blur of each
    clip's magnitude (what a smeared decoder does) scores below the clip itself, every time,
    and Griffin-Lim copies keep nearly all of it."""
    cfg = F.get_preset("fsdd")
    files = sorted(fsdd_recordings.glob("*.wav"))[::100]  # 30 clips, every digit
    clips = np.stack([load_clips(f, cfg)[0][1] for f in files])  # (30, samples)
    peak = np.abs(clips).max(axis=1, keepdims=True)
    mag = F.stft_magnitude(torch.from_numpy(clips / peak), cfg)  # (30, bins, frames)
    kernel = torch.full((1, 1, 3, 3), 1 / 9)
    blurred = torch.nn.functional.conv2d(mag[:, None], kernel, padding="same")[:, 0]
    floor = F.magnitude_floor(cfg)
    real, smeared = fine_structure(mag, floor), fine_structure(blurred, floor)
    assert (smeared < 0.85 * real).all(), (smeared / real).max()
    copies = waveform_fine_structure(
        F.features_to_waveform(F.waveform_to_features(clips, cfg), cfg), cfg
    )
    assert copies.mean() > 0.9 * float(real.mean())


@pytest.fixture(scope="module")
def fsdd_checkpoint(tmp_path_factory, fsdd_recordings) -> tuple[Path, Path, list[dict]]:
    """120 FSDD clips (fsdd preset) and a small conditional model trained 8 epochs on them."""
    root = tmp_path_factory.mktemp("fsdd")
    src = root / "clips"
    src.mkdir()
    for f in sorted(fsdd_recordings.glob("*.wav"))[::25]:
        (src / f.name).symlink_to(f)  # links to the shared recordings, never copies
    data, ckpt = root / "data", root / "ckpt"
    preprocess(src, data, F.get_preset("fsdd"), val_fraction=0.2)
    cfg = TrainConfig(epochs=8, batch_size=16, beta_warmup_epochs=2, seed=0, device="cpu")
    overrides = {"channels": (8, 16, 32, 64), "latent_dim": 8, "conditional": True}
    result = train(data, ckpt, train_config=cfg, model_overrides=overrides)
    return data, ckpt, result.history


@pytest.mark.slow
def test_training_on_fsdd_lowers_the_loss(fsdd_checkpoint):
    _, ckpt, history = fsdd_checkpoint
    assert [h["epoch"] for h in history] == list(range(1, 9))
    assert history[-1]["train_recon"] < 0.7 * history[0]["train_recon"]
    assert history[-1]["val_recon"] < history[0]["val_recon"]
    latents = np.load(ckpt / "latents.npz", allow_pickle=False)
    assert latents["means"].shape == (120, 8) and np.isfinite(latents["means"]).all()


@pytest.mark.slow  # its fixture trains 8 epochs on 120 FSDD clips
def test_conditional_morph_and_samples_on_fsdd(fsdd_checkpoint):
    data, ckpt, _ = fsdd_checkpoint
    synth, ds = Synthesiser.load(ckpt), load_dataset(data)
    assert synth.conditional and synth.label_names == [str(d) for d in range(10)]
    i, j = ds.labels.index("3"), ds.labels.index("8")
    a, b = (
        Clip(
            ds.ids[k],
            ds.waveforms[k],
            torch.from_numpy(ds.features[k].astype(np.float32)),
            int(ds.label_indices[k]),
        )
        for k in (i, j)
    )
    codes, feats = synth.interpolate(a, b, 5, "slerp")
    assert codes.shape == (5, 8) and feats.shape == (5, 128, 128)
    waves = synth.to_audio(feats)
    assert waves.shape == (5, 8128) and np.isfinite(waves).all()
    assert np.abs(waves).max(axis=1).min() > 1e-3  # every step makes a sound
    _, seven = synth.sample(3, label="7", temperature=0.8, seed=0)
    _, again = synth.sample(3, label="7", temperature=0.8, seed=0)
    assert torch.equal(seven, again) and not torch.equal(seven[0], seven[1])


@pytest.mark.slow  # its fixture trains 8 epochs on 120 FSDD clips
def test_evaluate_on_fsdd(fsdd_checkpoint):
    data, ckpt, _ = fsdd_checkpoint
    report = evaluate_reconstruction(Synthesiser.load(ckpt), load_dataset(data))
    assert report["clips"] == 20  # 20 % of 120, stratified
    assert report["griffin_lim_only"]["sc"]["median"] < 0.10
    assert 0 < report["model"]["lsd_db"]["median"] < 30
