"""A reconstruction term that matches what is heard: a multi-resolution spectral distance.

The per-bin likelihoods (``gaussian``, ``laplace``) ask the decoder for each bin's mean or
median, which a 16-number code can only give as a smeared spectrum. This term, after
Parallel WaveGAN's multi-resolution STFT loss and RAVE's multi-scale spectral distance,
compares spectrograms at full resolution and pooled 2x and 4x (so an error of a bin's
position costs less than an error of the envelope), as two parts per scale:

- L1 on the log magnitude (the features themselves: dB mapped to [0, 1]), summed over bins
  like the Laplace likelihood, so beta keeps its meaning;
- spectral convergence on the linear magnitude (the [0, 1] dB mapping undone), which
  weighs the loud bins that are heard over the quiet floor.

Weights (stated, not tuned per dataset): each scale's L1 sum counts ``L1_WEIGHT`` and its
spectral convergence ``SC_WEIGHT`` times the clip's bin count, then the scales are averaged.
They were set so that the Gaussian model shipped before this term (FSDD, beta 3) scores
what its Gaussian term gave, about 62 per clip on the val split, half from each part
(L1 sums 526 / 431 / 366 at the three scales, spectral convergence 0.64 / 0.57 / 0.46):
the term changes the shape of the distortion, not its balance against the KL.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SCALES = (1, 2, 4)
L1_WEIGHT = 0.07
SC_WEIGHT = 0.0035


def linear_magnitude(feats: torch.Tensor, top_db: float) -> torch.Tensor:
    """Features in [0, 1] -> magnitude relative to full scale (1 at 0 dB): (..., bins, frames).

    Smooth everywhere (no exact zero at the floor), so its gradient is defined at 0."""
    return torch.pow(10.0, (feats - 1.0) * (top_db / 20.0))


def _pool(x: torch.Tensor, scale: int) -> torch.Tensor:
    """(B, bins, frames) -> (B, bins / scale, frames / scale) by averaging, ceil-padded."""
    if scale == 1:
        return x
    return F.avg_pool2d(x.unsqueeze(1), scale, ceil_mode=True).squeeze(1)


def multiscale_spectral(recon: torch.Tensor, x: torch.Tensor, top_db: float) -> torch.Tensor:
    """The multi-resolution spectral distance per clip: (B, bins, frames) x2 -> (B,).

    At each of SCALES: L1_WEIGHT * sum |log-magnitude difference| (feature units, pooled
    cells weighted by their area) + SC_WEIGHT * bins * frames * ||M - M'||_F / ||M||_F
    on linear magnitudes pooled the same way; averaged over the scales.
    """
    n_cells = x.shape[-1] * x.shape[-2]
    ref_mag, est_mag = linear_magnitude(x, top_db), linear_magnitude(recon, top_db)
    total = torch.zeros(x.shape[0], dtype=recon.dtype, device=recon.device)
    for scale in SCALES:
        ref, est = _pool(ref_mag, scale), _pool(est_mag, scale)  # (B, bins/s, frames/s)
        # log of the pooled magnitude, back in feature units ([0, 1] <-> [-top_db, 0] dB)
        ref_log = 20 * torch.log10(ref.clamp(min=1e-12)) / top_db
        est_log = 20 * torch.log10(est.clamp(min=1e-12)) / top_db
        l1 = (est_log - ref_log).abs().flatten(1).sum(1) * scale**2  # (B,)
        sc = (est - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1).clamp(min=1e-12)
        total = total + L1_WEIGHT * l1 + SC_WEIGHT * n_cells * sc
    return total / len(SCALES)


def multiscale_per_bin(recon: torch.Tensor, x: torch.Tensor, top_db: float) -> torch.Tensor:
    """The multi-resolution spectral distance per bin, averaged over the batch: a scalar
    of about 0.004 for a stage-1 model on FSDD."""
    return (multiscale_spectral(recon, x, top_db) / (x.shape[-1] * x.shape[-2])).mean()
