"""Spectral distances between a reference and an estimate, per clip.

Both work on linear STFT magnitudes (..., bins, frames) so they judge what is heard after
the full round trip, not only what the decoder output looks like.
"""

from __future__ import annotations

import torch


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
