"""The modules that go into exported files: a checkpoint's decoder, encoder and vocoder as
plain tensor-in, tensor-out graphs for ONNX and TorchScript.

Each wraps the trained network without copying its maths: the decoder and encoder call
``ConvVAE.decode`` / ``encode``, the vocoder ``VocoderNet.outputs``. Only what ONNX cannot
express is written again here, in real arithmetic: the unit phase (ONNX has no complex
numbers) and the inverse STFT (no ISTFT operator), checked against ``torch.istft`` by the
tests.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vae.audio import features as F
from vae.model.conv_vae import ConvVAE
from vae.vocoder.network import VocoderNet


class Decoder(nn.Module):
    """z (B, latent_dim) [, label (B,) int64] -> features (B, bins, frames) in [0, 1]."""

    def __init__(self, model: ConvVAE):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, *label: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z, label[0] if label else None)


class MixDecoder(nn.Module):
    """z (B, latent_dim), label_weights (B, n_labels) float -> features (B, bins, frames):
    each row's label embedding is the weighted mix of the labels' (a one-hot row is its label),
    so a player can morph from one label to another."""

    def __init__(self, model: ConvVAE):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, label_weights: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z, label_weights)


class Encoder(nn.Module):
    """features (B, bins, frames) [, label (B,) int64] -> (mu, logvar), each (B, latent_dim)."""

    def __init__(self, model: ConvVAE):
        super().__init__()
        self.model = model

    def forward(self, feats: torch.Tensor, *label: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.model.encode(feats, label[0] if label else None)


class InverseSTFT(nn.Module):
    """``torch.istft(center=True, hann window, length=length)`` of (B, n_stft_bins, frames)
    real and imaginary parts -> (B, length), with matrix products and an overlap-add.

    The frame count is fixed (the feature config's), so the window-square envelope is a
    constant; only the batch axis varies.
    """

    def __init__(self, cfg: F.FeatureConfig, length: int | None = None):
        super().__init__()
        n, bins, frames = cfg.n_fft, cfg.n_stft_bins, cfg.n_frames
        self.hop, self.length = cfg.hop_length, length or cfg.clip_samples
        k = torch.arange(bins, dtype=torch.float64)[:, None]
        t = torch.arange(n, dtype=torch.float64)[None, :]
        angle = 2 * math.pi * k * t / n  # (bins, n)
        # A one-sided spectrum stands for its mirror too: every bin but DC (and Nyquist) twice.
        weight = torch.full((bins, 1), 2.0, dtype=torch.float64)
        weight[0] = 1.0
        if n % 2 == 0:
            weight[-1] = 1.0
        window = torch.hann_window(n, dtype=torch.float64)
        # Inverse DFT and synthesis window in one (n, bins) matrix per part.
        self.register_buffer("cos", (weight * torch.cos(angle) * window / n).T.float().clone())
        self.register_buffer("sin", (-weight * torch.sin(angle) * window / n).T.float().clone())
        self.register_buffer("eye", torch.eye(n).unsqueeze(1))  # (n, 1, n): overlap-add kernel
        envelope = nn.functional.conv_transpose1d(
            window.square().float().expand(1, frames, n).transpose(1, 2).contiguous(),
            self.eye,
            stride=self.hop,
        )[0, 0]  # (n + hop * (frames - 1),)
        start = n // 2
        envelope = nn.functional.pad(envelope, (0, max(0, start + self.length - len(envelope))))
        envelope = envelope[start : start + self.length]
        # torch.istft refuses a near-zero envelope; a sample no frame reaches is 0 here.
        inverse = torch.where(envelope > 1e-11, 1 / envelope, torch.zeros_like(envelope))
        self.register_buffer("inverse_envelope", inverse)
        self.start, self.total = start, n + self.hop * (frames - 1)

    def forward(self, real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
        frames = self.cos @ real + self.sin @ imag  # (B, n_fft, frames), windowed
        ola = nn.functional.conv_transpose1d(frames, self.eye, stride=self.hop)  # (B, 1, total)
        ola = nn.functional.pad(ola[:, 0], (0, max(0, self.start + self.length - self.total)))
        return ola[:, self.start : self.start + self.length] * self.inverse_envelope


class Vocoder(nn.Module):
    """features (B, bins, frames) -> waveform (B, clip_samples): the vocoder's one pass
    (``VocoderNet.forward``), without the optional Griffin-Lim refinement."""

    def __init__(self, net: VocoderNet):
        super().__init__()
        self.net = net
        cfg = net.config.feature
        self.istft = InverseSTFT(cfg)
        F.bank_inverse(cfg)  # computed now: the export sees a constant, not a pinv

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        config = self.net.config
        out = self.net.outputs(feats)  # (B, outputs, bins, frames)
        x, y = out[:, 0], out[:, 1]
        if config.phase == "integrated":
            step = (torch.atan2(y, x) + self.net.advance).double()
            phase = torch.cumsum(step, dim=-1)
            real, imag = torch.cos(phase).float(), torch.sin(phase).float()
        else:  # the same unit vector as VocoderNet.spectrum's
            norm = torch.sqrt(x.square() + y.square() + 1e-8)
            real, imag = x / norm, y / norm
        if config.magnitude == "predicted":
            mag = torch.exp(out[:, 2].clamp(max=12.0))
        else:
            mag = F.features_to_magnitude(feats, config.feature)  # (B, n_stft_bins, frames)
        return self.istft(mag * real, mag * imag)
