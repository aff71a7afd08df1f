"""A trained checkpoint as an instrument: audio -> codes -> spectrograms -> audio.

Both faces use this one class: the CLI's reconstruct / interpolate / sample commands and the
app's Explore, Interpolate and Synthesise pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vae import features as F
from vae.audio import peak_normalise
from vae.checkpoints import Checkpoint, load_checkpoint
from vae.latent import interpolation_path

Labels = torch.Tensor | list[int] | None


@dataclass
class Clip:
    """One clip in hand: its name, waveform (clip_samples,), features (bins, frames), label."""

    name: str
    wave: np.ndarray
    features: torch.Tensor
    label: int = -1


class Synthesiser:
    """Wraps a loaded checkpoint; every method works in eval mode without gradients."""

    def __init__(self, checkpoint: Checkpoint):
        self.checkpoint = checkpoint
        self.model = checkpoint.model.eval()
        self.config: F.FeatureConfig = checkpoint.feature_config
        self.label_names: list[str] = list(checkpoint.label_names)
        self.device = next(self.model.parameters()).device

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> Synthesiser:
        return cls(load_checkpoint(path, device=device))

    @property
    def conditional(self) -> bool:
        return self.checkpoint.model_config.n_labels > 0

    @property
    def latent_dim(self) -> int:
        return self.checkpoint.model_config.latent_dim

    def label_index(self, label: str | int | None) -> int:
        """Index of a label name (or index); -1 for None. ValueError lists the choices."""
        if label is None or label == -1:
            return -1
        if isinstance(label, int) and 0 <= label < len(self.label_names):
            return label
        if str(label) in self.label_names:
            return self.label_names.index(str(label))
        raise ValueError(f"label {label!r} is not one of this checkpoint's {self.label_names}")

    def clip_from_file(self, path: str | Path, label: str | int | None = None) -> Clip:
        """The first clip of an audio file, shaped as the checkpoint's features expect."""
        _, wave = F.load_clips(path, self.config)[0]
        wave = peak_normalise(wave)
        feats = F.waveform_to_features(wave, self.config)  # (bins, frames)
        return Clip(Path(path).stem, wave, feats, self.label_index(label))

    def _labels(self, labels: Labels, n: int) -> torch.Tensor | None:
        if not self.conditional:
            return None
        if labels is None:
            raise ValueError(f"this checkpoint is conditional on {self.label_names}: give a label")
        t = torch.as_tensor(labels, device=self.device)
        if t.dtype == torch.long and (t < 0).any():
            raise ValueError(f"this checkpoint is conditional on {self.label_names}: give a label")
        return t.expand(n) if t.dim() == 0 else t

    @torch.no_grad()
    def encode(self, feats: torch.Tensor, labels: Labels = None) -> torch.Tensor:
        """Posterior means of features (B, bins, frames) -> (B, latent_dim)."""
        feats = torch.as_tensor(feats, dtype=torch.float32, device=self.device)
        mu, _ = self.model.encode(feats, self._labels(labels, len(feats)))
        return mu

    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels: Labels = None) -> torch.Tensor:
        """Codes (B, latent_dim) -> features (B, bins, frames) in [0, 1], on the CPU."""
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device)
        return self.model.decode(z, self._labels(labels, len(z))).float().cpu()

    def to_audio(self, feats: torch.Tensor, n_iter: int | None = None) -> np.ndarray:
        """Features (..., bins, frames) -> waveforms (..., clip_samples) via Griffin-Lim."""
        return F.features_to_waveform(torch.as_tensor(feats).cpu(), self.config, n_iter).numpy()

    def reconstruct(self, feats: torch.Tensor, labels: Labels = None) -> torch.Tensor:
        """Encode to the posterior mean and decode: (B, bins, frames) -> (B, bins, frames)."""
        return self.decode(self.encode(feats, labels), labels)

    def interpolate(
        self,
        a: Clip,
        b: Clip,
        steps: int,
        mode: str = "lerp",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes and features along the path from clip ``a`` to clip ``b``.

        For a conditional model the label moves with the code: its one-hot weight is
        mixed linearly from A's label to B's.

        Returns:
            (codes (steps, latent_dim), features (steps, bins, frames))
        """
        za = self.encode(a.features.unsqueeze(0), [a.label])[0]
        zb = self.encode(b.features.unsqueeze(0), [b.label])[0]
        path = interpolation_path(za.cpu(), zb.cpu(), steps, mode)  # (steps, D)
        labels = None
        if self.conditional:
            t = torch.linspace(0.0, 1.0, steps).unsqueeze(-1)  # (steps, 1)
            eye = torch.eye(len(self.label_names))
            labels = eye[a.label] * (1 - t) + eye[b.label] * t  # (steps, n_labels)
        return path, self.decode(path, labels)

    def sample(
        self,
        n: int,
        label: str | int | None = None,
        temperature: float = 1.0,
        seed: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` codes from the prior (scaled by ``temperature``) and decode them.

        Returns:
            (codes (n, latent_dim), features (n, bins, frames))
        """
        if n < 1:
            raise ValueError(f"n={n}: ask for at least one sample")
        if temperature <= 0:
            raise ValueError(f"temperature={temperature} must be positive")
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        z = torch.randn(n, self.latent_dim, generator=gen) * temperature
        labels = [self.label_index(label)] * n if self.conditional else None
        return z, self.decode(z, labels)
