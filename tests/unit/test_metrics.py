"""Fine structure: the step between neighbouring frequency bins (dB) over a clip's loud
frames, what a smeared spectrum loses; and its figures in an evaluation report."""

import numpy as np
import pytest
import torch

from vae.audio import features as F
from vae.audio.metrics import fine_structure, waveform_fine_structure
from vae.evaluation.evaluate import evaluate_reconstruction, realism_rows

CFG = F.FeatureConfig(sample_rate=8000, clip_samples=4096, n_fft=256, hop_length=128)
FLOOR = F.magnitude_floor(CFG)


def harmonic_tone(f0: float = 180.0, seconds: float = 0.512, rate: int = 8000) -> np.ndarray:
    """A voiced-like clip (samples,): 12 harmonics of ``f0`` falling 3 dB each, a slow vibrato."""
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * f0 * (t + 0.002 * np.sin(2 * np.pi * 5 * t))
    wave = sum(10 ** (-3 * k / 20) * np.sin((k + 1) * phase) for k in range(12))
    return (0.9 * wave / np.abs(wave).max()).astype(np.float32)


def blur(mag: torch.Tensor, size: int) -> torch.Tensor:
    """A ``size`` x ``size`` box blur over (freq, time) of a magnitude (bins, frames)."""
    kernel = torch.full((1, 1, size, size), 1.0 / size**2)
    return torch.nn.functional.conv2d(mag[None, None], kernel, padding="same")[0, 0]


def test_a_blurred_clip_has_less_fine_structure_than_the_real_one():
    mag = F.stft_magnitude(torch.from_numpy(harmonic_tone()), CFG)  # (129, frames)
    real = float(fine_structure(mag, FLOOR))
    blurred = [float(fine_structure(blur(mag, size), FLOOR)) for size in (3, 5, 7)]
    assert real > 3.0  # harmonics ~7 bins apart: deep valleys between them
    assert blurred[0] < 0.8 * real  # a 3x3 blur already loses a fifth of it
    assert blurred[0] > blurred[1] > blurred[2]  # and the wider the blur, the flatter


def test_a_flat_spectrum_scores_zero_and_a_clip_is_scored_per_clip():
    mag = F.stft_magnitude(torch.from_numpy(harmonic_tone()), CFG)  # (129, 33)
    flat = torch.full((3, *mag.shape), 0.5)  # (clips, bins, frames)
    torch.testing.assert_close(fine_structure(flat, FLOOR), torch.zeros(3))
    both = fine_structure(torch.stack([mag, flat[0]]), FLOOR)  # batched == one by one
    torch.testing.assert_close(both, torch.stack([fine_structure(mag, FLOOR), torch.tensor(0.0)]))


def test_silent_and_quiet_frames_are_left_out():
    mag = F.stft_magnitude(torch.from_numpy(harmonic_tone()), CFG)  # (bins, frames)
    alone = fine_structure(mag, FLOOR)
    silence = torch.zeros(mag.shape[0], 40)
    # 40 dB below the loudest frame's mean power: not silent, as rough as noise; left out too
    loudest = mag.pow(2).mean(dim=0).max().sqrt()
    rough = torch.rand(mag.shape[0], 40, generator=torch.Generator().manual_seed(0))
    hiss = loudest * 1e-2 * rough / rough.pow(2).mean().sqrt()
    for gap in (silence, hiss):
        torch.testing.assert_close(fine_structure(torch.cat([mag, gap], dim=-1), FLOOR), alone)
    # were they counted, the silent frames (step 0) would pull the figure down by 40/(40+n)
    assert float(fine_structure(torch.cat([mag, silence], dim=-1), FLOOR, loud_db=1e9)) < float(
        alone
    )


def test_the_figure_from_audio_ignores_the_level_and_silence_gives_zero():
    tone = harmonic_tone()
    waves = np.stack([tone, 0.05 * tone, np.zeros_like(tone)])  # (3, samples)
    figures = waveform_fine_structure(waves, CFG)
    assert figures.shape == (3,) and np.isfinite(figures).all()
    assert figures[1] == pytest.approx(figures[0], rel=1e-4)  # peak-normalised first
    assert figures[2] == 0.0
    mag = F.stft_magnitude(torch.from_numpy(tone / np.abs(tone).max()), CFG)
    assert figures[0] == pytest.approx(float(fine_structure(mag, FLOOR)), rel=1e-5)


@pytest.fixture(scope="module")
def report(studio_root) -> dict:
    from vae.data.dataset import load_dataset
    from vae.synthesis.inference import Synthesiser

    synth = Synthesiser.load(studio_root / "checkpoints" / "demo")
    return evaluate_reconstruction(synth, load_dataset(studio_root / "data" / "demo"))


@pytest.mark.slow
def test_evaluation_reports_fine_structure_without_a_judge(report):
    real = report["real"]["fine_structure_db"]["mean"]
    assert real > 0 and report["real"]["fine_structure_vs_real"] == 1.0
    for part in ("model", "griffin_lim_only"):
        figures = report[part]
        assert set(figures["fine_structure_db"]) == {"median", "mean", "p90"}
        assert figures["fine_structure_vs_real"] == pytest.approx(
            figures["fine_structure_db"]["mean"] / real
        )
        assert figures["fine_structure_vs_real"] > 0
    rows = realism_rows(report)
    assert [r["set"] for r in rows] == ["real", "phase_copies", "reconstructed"]
    assert all(r["frechet"] is None and r["clips"] == report["clips"] for r in rows)
    assert rows[2]["fine_structure_db"] == report["model"]["fine_structure_db"]["mean"]


def test_realism_rows_prefer_the_judge_and_read_old_reports():
    def fine(mean: float, vs: float) -> dict:
        return {"fine_structure_db": {"median": mean, "mean": mean, "p90": mean},
                "fine_structure_vs_real": vs}  # fmt: skip

    judged = {"clips": 4, "frechet": 2.0, "inception_score": 3.0}
    report = {
        "clips": 5,
        "model": fine(4.0, 0.5),
        "griffin_lim_only": fine(7.0, 0.9),
        "real": fine(8.0, 1.0),
        "judge": {
            "distribution": {
                "phase_copies": {**judged, "frechet": 0.5, **fine(7.5, 0.94)},
                "reconstructed": {**judged, **fine(4.4, 0.55)},
                "samples": {**judged, "frechet": 3.0},  # an older report: no fine structure
            }
        },
    }
    rows = {r["set"]: r for r in realism_rows(report)}
    assert list(rows) == ["real", "phase_copies", "reconstructed", "samples"]
    assert rows["real"]["frechet"] is None and rows["real"]["fine_structure_db"] == 8.0
    assert rows["phase_copies"]["frechet_vs_phase"] == 1.0
    assert rows["reconstructed"]["frechet_vs_phase"] == 4.0
    assert rows["reconstructed"]["fine_structure_vs_real"] == 0.55  # the judge's audio
    assert rows["samples"]["fine_structure_db"] is None and rows["samples"]["clips"] == 4
    old = {"clips": 5, "model": {"lsd_db": {}}, "griffin_lim_only": {"lsd_db": {}}}
    assert realism_rows(old) == []  # nothing to lead with: no row of blanks
