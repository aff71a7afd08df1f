"""SpectrogramCritic: the discriminator of the adversarial stage (``vae.training.sharpen``).

A small 2-D patch critic over normalised log spectrograms (B, bins, frames) in [0, 1], at
two scales (full resolution and pooled 2x), after the TTS spectrogram critics and
HiFi-GAN's multi-scale discriminator: it judges local texture (harmonics, formant edges,
onsets), which is what the reconstruction loss smears, rather than the whole clip. Every
convolution is spectrally normalised (a stable critic without gradient penalties); a
conditional model's critic adds a label projection (Miyato & Koyama), so a "7" must sound
like a 7 to pass. No I/O here; the stage stores its weights beside the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

# The critic reads features as (x - 0.5) * INPUT_GAIN: spectral norm bounds its slope per
# input unit, and on [0, 1] features it stayed too flat to tell real from decoded (on FSDD,
# 80 steps took the hinge loss from 4.0 to 3.58 at gain 1, to 2.51 at gain 8).
INPUT_GAIN = 8.0
# What the critic takes as labels: indices (B,), label weights (B, n_labels) for points
# between two labels (a morph), or None (an unconditional model).
CriticLabels = torch.Tensor | None


@dataclass(frozen=True)
class CriticConfig:
    """The critic's shape.

    Attributes:
        channels: widths of the stride-2 stages of each scale's network.
        scales: average-pooling factors of the input, one network per scale.
        n_labels: 0 for an unconditional model, else the number of labels projected.
    """

    channels: tuple[int, ...] = (32, 64, 128)
    scales: tuple[int, ...] = (1, 2)
    n_labels: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "scales", tuple(int(s) for s in self.scales))
        if not self.channels or any(c < 1 for c in self.channels) or len(self.channels) > 6:
            raise ValueError(f"critic channels={self.channels}: one to six positive widths")
        if not self.scales or any(s < 1 for s in self.scales):
            raise ValueError(f"critic scales={self.scales}: one or more factors >= 1")
        if self.n_labels < 0:
            raise ValueError(f"critic n_labels={self.n_labels} must be 0 or more")


class PatchCritic(nn.Module):
    """One scale: (B, 1, H, W) -> patch logits (B, h, w) and the hidden feature maps."""

    def __init__(self, channels: tuple[int, ...], n_labels: int):
        super().__init__()
        layers, width = [], 1
        for c in channels:
            layers.append(spectral_norm(nn.Conv2d(width, c, 4, stride=2, padding=1)))
            width = c
        self.stages = nn.ModuleList(layers)
        self.out = spectral_norm(nn.Conv2d(width, 1, 3, padding=1))
        self.embed = spectral_norm(nn.Embedding(n_labels, width)) if n_labels else None

    def forward(
        self, x: torch.Tensor, labels: CriticLabels
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats, h = [], x
        for stage in self.stages:
            h = F.leaky_relu(stage(h), 0.2)
            feats.append(h)
        logits = self.out(h)[:, 0]  # (B, h, w)
        if self.embed is not None and labels is not None:
            if labels.is_floating_point():  # label weights (B, n_labels): a mixed embedding
                emb = labels.to(h.dtype) @ self.embed.weight
            else:
                emb = self.embed(labels.long())  # (B, C)
            projection = (emb * h.mean(dim=(2, 3))).sum(1)  # (B,)
            logits = logits + projection[:, None, None]
        return logits, feats


class SpectrogramCritic(nn.Module):
    """Features (B, bins, frames) -> per scale (patch logits (B, h, w), feature maps)."""

    def __init__(self, config: CriticConfig):
        super().__init__()
        self.config = config
        self.critics = nn.ModuleList(
            PatchCritic(config.channels, config.n_labels) for _ in config.scales
        )

    def forward(
        self, x: torch.Tensor, labels: CriticLabels = None
    ) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        h = (x.unsqueeze(1) - 0.5) * INPUT_GAIN  # (B, 1, bins, frames)
        out = []
        for scale, critic in zip(self.config.scales, self.critics, strict=True):
            pooled = F.avg_pool2d(h, scale, ceil_mode=True) if scale > 1 else h
            out.append(critic(pooled, labels))
        return out


def critic_loss(
    real: list[tuple[torch.Tensor, list[torch.Tensor]]],
    fake: list[tuple[torch.Tensor, list[torch.Tensor]]],
) -> torch.Tensor:
    """Hinge loss of the critic: mean relu(1 - D(real)) + mean relu(1 + D(fake)), summed
    over scales."""
    total = torch.zeros(())
    for (r, _), (f, _) in zip(real, fake, strict=True):
        total = total + F.relu(1 - r).mean() + F.relu(1 + f).mean()
    return total


def generator_loss(fake: list[tuple[torch.Tensor, list[torch.Tensor]]]) -> torch.Tensor:
    """Hinge loss of the generator (the decoder): -mean D(fake), summed over scales."""
    total = torch.zeros(())
    for logits, _ in fake:
        total = total - logits.mean()
    return total


def feature_matching(
    real: list[tuple[torch.Tensor, list[torch.Tensor]]],
    fake: list[tuple[torch.Tensor, list[torch.Tensor]]],
) -> torch.Tensor:
    """Mean L1 between the critic's hidden maps of real clips and of their reconstructions
    (same order), averaged over layers and scales: the decoder learns to land where real
    clips do in the critic's eyes, a smoother signal than the logits alone."""
    terms = [
        (f - r.detach()).abs().mean()
        for (_, r_maps), (_, f_maps) in zip(real, fake, strict=True)
        for r, f in zip(r_maps, f_maps, strict=True)
    ]
    return torch.stack(terms).mean()


def shift_time(x: torch.Tensor, most: int, gen: torch.Generator) -> torch.Tensor:
    """Each clip of ``x`` (B, bins, frames) moved by a random whole number of frames in
    [-most, most], the gap filled with silence (0)."""
    if most <= 0:
        return x
    padded = torch.nn.functional.pad(x, (most, most))  # (B, bins, frames + 2 most)
    offsets = torch.randint(0, 2 * most + 1, (len(x),), generator=gen).tolist()
    frames = x.shape[-1]
    return torch.stack([p[:, o : o + frames] for p, o in zip(padded, offsets, strict=True)])
