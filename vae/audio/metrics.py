"""Spectral distances between a reference and an estimate, per clip.

Both work on linear STFT magnitudes (..., bins, frames) so they judge what is heard after
the full round trip, not only what the decoder output looks like.
"""

from __future__ import annotations

import numpy as np
import torch

from vae.audio import features as F


def summarise(values: np.ndarray) -> dict[str, float]:
    """Median, mean and 90th percentile of per-clip figures (n,), as reports give them."""
    return {
        "median": float(np.median(values)),
        "mean": float(np.mean(values)),
        "p90": float(np.percentile(values, 90)),
    }


def spectral_convergence(ref: torch.Tensor, est: torch.Tensor) -> torch.Tensor:
    """||ref - est||_F / ||ref||_F per clip: (..., bins, frames) x2 -> (...)."""
    num = (ref - est).flatten(-2).norm(dim=-1)
    den = ref.flatten(-2).norm(dim=-1).clamp(min=1e-12)
    return num / den


def log_spectral_distance(ref: torch.Tensor, est: torch.Tensor, floor: float) -> torch.Tensor:
    """Log-spectral distance in dB per clip: (..., bins, frames) x2 -> (...).

    The RMS over bins of the dB difference, averaged over frames; magnitudes below
    ``floor`` (the features' -top_db point) are raised to it, so inaudible bins do not
    dominate the figure.
    """
    db_ref = 20 * torch.log10(ref.clamp(min=floor))
    db_est = 20 * torch.log10(est.clamp(min=floor))
    per_frame = ((db_ref - db_est) ** 2).mean(dim=-2).sqrt()  # (..., frames)
    return per_frame.mean(dim=-1)


def clip_metrics(
    ref_feats: torch.Tensor | np.ndarray,
    est_feats: torch.Tensor | np.ndarray,
    cfg: F.FeatureConfig,
    est_wave: torch.Tensor | np.ndarray | None = None,
) -> dict[str, float]:
    """Spectral convergence and log-spectral distance (dB) of one clip, for a page to show.

    The reference is the magnitude its features (bins, frames) stand for. The estimate is
    the STFT of ``est_wave`` (clip_samples,) when given, i.e. what is heard after Griffin-Lim
    (the figures ``evaluate_reconstruction`` reports for the model), else the magnitude of
    ``est_feats`` (bins, frames), i.e. the decoder alone.

    Returns:
        {"spectral_convergence": float, "log_spectral_distance_db": float}
    """
    ref = F.features_to_magnitude(torch.as_tensor(np.asarray(ref_feats, np.float32)), cfg)
    if est_wave is not None:
        wave = torch.as_tensor(np.asarray(est_wave, np.float32))  # (clip_samples,)
        est = F.stft_magnitude(wave, cfg)
    else:
        est = F.features_to_magnitude(torch.as_tensor(np.asarray(est_feats, np.float32)), cfg)
    if est.shape != ref.shape:
        raise ValueError(
            f"estimate of shape {tuple(est.shape)} does not match the reference "
            f"{tuple(ref.shape)}: give features and audio made with the same FeatureConfig"
        )
    return {
        "spectral_convergence": float(spectral_convergence(ref, est)),
        "log_spectral_distance_db": float(log_spectral_distance(ref, est, F.magnitude_floor(cfg))),
    }


# How far below a clip's loudest frame a frame may be and still count for fine_structure:
# quieter frames are mostly the floor, where neighbouring bins are all equal.
LOUD_FRAME_DB = 30.0


def fine_structure(mag: torch.Tensor, floor: float, loud_db: float = LOUD_FRAME_DB) -> torch.Tensor:
    """Fine structure of the spectrum in dB per clip: (..., bins, frames) -> (...).

    The mean absolute difference between neighbouring frequency bins of the log magnitude
    (harmonics and formant edges make it large; a smeared spectrum makes it small), over
    the clip's loud frames: those whose mean power is within ``loud_db`` of its loudest
    frame. Magnitudes below ``floor`` are raised to it, as in the log-spectral distance.
    Read it as a ratio to real clips scored the same way (a blurred copy scores less).
    """
    db = 20 * torch.log10(mag.clamp(min=floor))  # (..., bins, frames)
    step = (db[..., 1:, :] - db[..., :-1, :]).abs().mean(dim=-2)  # (..., frames)
    power_db = 10 * torch.log10(mag.pow(2).mean(dim=-2).clamp(min=floor**2))  # (..., frames)
    loud = power_db >= power_db.amax(dim=-1, keepdim=True) - loud_db  # (..., frames)
    return (step * loud).sum(dim=-1) / loud.sum(dim=-1).clamp(min=1)


def waveform_fine_structure(
    waves: torch.Tensor | np.ndarray, cfg: F.FeatureConfig, mag: torch.Tensor | None = None
) -> np.ndarray:
    """``fine_structure`` in dB of clips as heard: (..., samples) -> (...) float64.

    Each clip is peak-normalised first, as the features are, so a quieter decoder output is
    not scored as flatter only because more of it sits below the floor. ``mag``, when the
    caller already has it, is ``stft_magnitude(waves)`` (..., stft_bins, frames): the STFT is
    linear, so it is scaled by each clip's peak instead of analysed again.
    """
    if torch.is_tensor(waves):
        waves = waves.detach().cpu().numpy()
    wave = torch.from_numpy(np.array(waves, dtype=np.float32))  # a copy: (..., samples)
    peak = wave.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12)  # (..., 1)
    if mag is None:
        mag = F.stft_magnitude(wave / peak, cfg)  # (..., stft_bins, frames)
    else:
        mag = mag / peak.unsqueeze(-1)
    return fine_structure(mag, F.magnitude_floor(cfg)).double().numpy()
