"""A few validation clips beside their reconstructions: what the Train page shows after each
epoch, computed here so that the page only caches and draws it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vae.data.dataset import SpectrogramSet
from vae.synthesis.inference import Synthesiser


@dataclass(frozen=True)
class Reconstruction:
    """One clip and its reconstruction, as features and as sound.

    Attributes:
        clip_id: the clip's id in its dataset.
        original, reconstruction: features, (bins, frames) each.
        wave, reconstructed_wave: (clip_samples,) each; the second through the model's phase.
    """

    clip_id: str
    original: np.ndarray
    reconstruction: np.ndarray
    wave: np.ndarray
    reconstructed_wave: np.ndarray


def reconstruct_showcase(
    synth: Synthesiser, ds: SpectrogramSet, clips: int
) -> list[Reconstruction]:
    """Reconstruct ``clips`` validation clips of different labels (a clip of each of the first
    labels, ``ds.showcase``) with the checkpoint ``synth`` holds.

    Raises:
        ValueError: when ``ds`` has other features than the checkpoint was trained on.
    """
    if ds.config.fingerprint() != synth.config.fingerprint():
        raise ValueError(
            f"{ds.root}: not the features of checkpoint {synth.checkpoint.path}; pick its dataset"
        )
    rows = ds.showcase(clips, "val")
    feats = torch.from_numpy(ds.features[rows].astype(np.float32))  # (n, bins, frames)
    labels = torch.from_numpy(ds.label_indices[rows]) if synth.conditional else None
    recon = synth.reconstruct(feats, labels)  # (n, bins, frames)
    waves = synth.to_audio(recon)  # (n, clip_samples)
    return [
        Reconstruction(
            ds.ids[r], feats[i].numpy(), recon[i].numpy(), np.asarray(ds.waveforms[r]), waves[i]
        )
        for i, r in enumerate(rows)
    ]
