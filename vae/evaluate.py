"""How good is a checkpoint? Reconstruction figures on a dataset split, after the audio round trip.

Each clip goes encode -> decode -> Griffin-Lim -> STFT, and is compared with the magnitude
its stored features stand for. The same figures for Griffin-Lim alone (no model) are
reported beside them, so the cost of phase recovery and the cost of the model can be told apart.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from vae import features as F
from vae.checkpoints import check_compatible
from vae.dataset import SpectrogramSet
from vae.inference import Synthesiser
from vae.metrics import log_spectral_distance, spectral_convergence

Progress = Callable[[int, int], None] | None


def _summary(values: np.ndarray) -> dict[str, float]:
    return {
        "median": float(np.median(values)),
        "mean": float(np.mean(values)),
        "p90": float(np.percentile(values, 90)),
    }


def evaluate_reconstruction(
    synth: Synthesiser,
    ds: SpectrogramSet,
    split: str = "val",
    batch_size: int = 64,
    progress: Progress = None,
) -> dict:
    """Log-spectral distance (dB) and spectral convergence on ``split`` of ``ds``.

    Returns:
        {"split", "clips", "model": {"lsd_db": {...}, "sc": {...}, "feature_mse"},
         "griffin_lim_only": {"lsd_db": {...}, "sc": {...}}} with median/mean/p90 each.
    """
    cfg = synth.config
    check_compatible(synth.checkpoint, ds.config, f"dataset {ds.root}")
    idx = ds.split_indices(split)
    if len(idx) == 0:
        raise ValueError(f"dataset {ds.root} has no clips in split {split!r}")
    labels_all = ds.label_indices
    floor = F.magnitude_floor(cfg)
    lsd, sc, gl_lsd, gl_sc, mse = [], [], [], [], []
    for start in range(0, len(idx), batch_size):
        batch = idx[start : start + batch_size]
        feats = torch.from_numpy(np.asarray(ds.features[batch], dtype=np.float32))
        labels = labels_all[batch].tolist() if synth.conditional else None
        recon = synth.reconstruct(feats, labels)  # (B, bins, frames)
        mse.append(((recon - feats) ** 2).mean(dim=(-2, -1)).numpy())
        ref = F.features_to_magnitude(feats, cfg)  # (B, stft_bins, frames)
        for source, out_lsd, out_sc in ((recon, lsd, sc), (feats, gl_lsd, gl_sc)):
            est = F.stft_magnitude(torch.from_numpy(synth.to_audio(source)), cfg)
            out_lsd.append(log_spectral_distance(ref, est, floor).numpy())
            out_sc.append(spectral_convergence(ref, est).numpy())
        if progress:
            progress(min(start + batch_size, len(idx)), len(idx))
    cat = np.concatenate
    return {
        "split": split,
        "clips": int(len(idx)),
        "model": {
            "lsd_db": _summary(cat(lsd)),
            "sc": _summary(cat(sc)),
            "feature_mse": float(cat(mse).mean()),
        },
        "griffin_lim_only": {"lsd_db": _summary(cat(gl_lsd)), "sc": _summary(cat(gl_sc))},
    }
