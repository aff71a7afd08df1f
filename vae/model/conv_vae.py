"""ModelConfig and ConvVAE: a convolutional VAE over normalised log spectrograms.

No I/O here: the config travels inside every checkpoint, and ``ConvVAE(config)`` rebuilds the
network from it. Features are (B, bins, frames) in [0, 1]; the model pads them up to a multiple
of ``2 ** len(channels)`` on the way in and crops its output back, so any FeatureConfig shape
works. A conditional model (``n_labels > 0``) sees a label embedding in the encoder (a
per-channel shift after the first stage) and appended to the code in the decoder.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vae.model.losses import Losses, LossSettings
from vae.model.spectral_loss import multiscale_spectral
from vae.storage import limits

MODEL_FORMAT_VERSION = 1

# Channel widths per encoder stage, by name; each stage halves both spatial axes.
# "small" is the default: it trains at ~190 clips/s per CPU core on 256 x 64 features, where
# "medium" manages ~55; "large" adds a fifth stage for long music spectrograms (512 x 256).
MODEL_SIZES: dict[str, tuple[int, ...]] = {
    "tiny": (8, 16, 32),
    "small": (16, 32, 64, 128),
    "medium": (32, 64, 128, 256),
    "large": (32, 64, 128, 256, 512),
}

# What encode/decode take as labels, here and in vae.synthesis.inference: indices (n,), one index
# for
# all, label weights (n, n_labels), or None for an unconditional model.
Labels = torch.Tensor | Sequence[int] | int | None
# How the decoder doubles its resolution: "transpose" (a 4x4 transposed convolution, the
# first version) or "upsample" (nearest-neighbour upsampling, then a 3x3 convolution: no
# checkerboard of uneven overlaps, which smeared harmonics into bands).
DECODER_KINDS = ("transpose", "upsample")


@dataclass(frozen=True)
class ModelConfig:
    """The network's shape; enough to rebuild a ConvVAE from a checkpoint.

    Attributes:
        n_bins, n_frames: feature shape the model reads and writes.
        channels: width of each stride-2 encoder stage (the decoder mirrors them).
        latent_dim: size of the code z.
        n_labels: 0 for an unconditional model, else the number of label classes.
        label_dim: size of the label embedding (conditional models only).
        decoder: how each decoder stage upsamples, one of DECODER_KINDS.
        res_blocks: residual blocks after each decoder stage (0 = none): capacity where
            the detail is drawn, at no cost to the code's size.
    """

    n_bins: int
    n_frames: int
    channels: tuple[int, ...] = MODEL_SIZES["small"]
    latent_dim: int = 16
    n_labels: int = 0
    label_dim: int = 16
    decoder: str = "transpose"
    res_blocks: int = 0

    def __post_init__(self) -> None:
        # Accept a list from JSON or argparse; store a tuple so the config stays hashable.
        object.__setattr__(self, "channels", tuple(self.channels))
        checks = [
            (self.n_bins >= 1, f"n_bins={self.n_bins} must be at least 1"),
            (self.n_frames >= 1, f"n_frames={self.n_frames} must be at least 1"),
            (
                len(self.channels) >= 1 and all(int(c) == c and c >= 1 for c in self.channels),
                f"channels={self.channels} must be one or more positive widths, e.g. (32, 64)",
            ),
            (len(self.channels) <= 8, f"channels={self.channels}: at most 8 stages"),
            (self.latent_dim >= 1, f"latent_dim={self.latent_dim} must be at least 1"),
            (self.n_labels >= 0, f"n_labels={self.n_labels} must be 0 (unconditional) or more"),
            (self.label_dim >= 1, f"label_dim={self.label_dim} must be at least 1"),
            (
                self.decoder in DECODER_KINDS,
                f"decoder={self.decoder!r}: choose one of {DECODER_KINDS}",
            ),
            (0 <= self.res_blocks <= 8, f"res_blocks={self.res_blocks}: 0 to 8 per stage"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        for ok, message in limits.model_limits(self):  # before any layer is allocated
            limits.check(ok, message)

    @property
    def conditional(self) -> bool:
        return self.n_labels > 0

    @property
    def stride(self) -> int:
        """Total downsampling factor of the encoder."""
        return 2 ** len(self.channels)

    @property
    def padded_shape(self) -> tuple[int, int]:
        """(bins, frames) rounded up to a multiple of :attr:`stride`."""
        s = self.stride
        return (math.ceil(self.n_bins / s) * s, math.ceil(self.n_frames / s) * s)

    @property
    def bottleneck_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the last encoder stage."""
        h, w = self.padded_shape
        return (self.channels[-1], h // self.stride, w // self.stride)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["channels"] = list(self.channels)
        return {"format_version": MODEL_FORMAT_VERSION, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild from :meth:`to_dict`; refuses unknown versions and fields."""
        data = dict(data)
        version = data.pop("format_version", MODEL_FORMAT_VERSION)
        if version != MODEL_FORMAT_VERSION:
            raise ValueError(
                f"model config format_version {version} is not supported "
                f"(this version reads {MODEL_FORMAT_VERSION}); upgrade or retrain"
            )
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown model config fields {unknown}; upgrade or retrain")
        data["channels"] = tuple(data.get("channels", MODEL_SIZES["small"]))
        config = cls(**data)
        check_model_size(config)
        return config


def check_model_size(config: ModelConfig) -> int:
    """The parameter count of the ConvVAE of ``config`` (a config from a file), counted on
    torch's meta device so nothing is allocated; LimitError over ``limits.MAX_PARAMETERS``."""
    with torch.device("meta"):
        n = count_parameters(ConvVAE(config))
    limits.check(
        n <= limits.MAX_PARAMETERS,
        f"model_config: {n:,} parameters, at most {limits.MAX_PARAMETERS:,}",
    )
    return n


def _stage(conv: nn.Module, width: int) -> nn.Sequential:
    # GroupNorm, not BatchNorm: a clip's code must not depend on its batch-mates, in training
    # or in eval, and nothing needs syncing across processes.
    return nn.Sequential(conv, nn.GroupNorm(math.gcd(width, 8), width), nn.SiLU())


class ResBlock(nn.Module):
    """x + conv(silu(norm(conv(x)))): two 3x3 convolutions that keep (B, C, H, W)."""

    def __init__(self, width: int):
        super().__init__()
        groups = math.gcd(width, 8)
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1),
            nn.GroupNorm(groups, width),
            nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.GroupNorm(groups, width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x + self.body(x))


def _upsampler(kind: str, c_in: int, c_out: int) -> nn.Module:
    """A layer that doubles (H, W) and maps c_in to c_out channels."""
    if kind == "upsample":
        return nn.Sequential(nn.Upsample(scale_factor=2.0), nn.Conv2d(c_in, c_out, 3, padding=1))
    return nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)


def _decoder(config: ModelConfig) -> nn.Sequential:
    """Bottleneck (B, C_last, h, w) -> logits (B, 1, Hp, Wp), mirroring the encoder."""
    rev = config.channels[::-1]
    layers: list[nn.Module] = []
    for a, b in zip(rev[:-1], rev[1:], strict=True):
        layers.append(_stage(_upsampler(config.decoder, a, b), b))
        layers += [ResBlock(b) for _ in range(config.res_blocks)]
    # The last upsampling writes the single output channel: logits, squashed by a sigmoid.
    layers.append(_upsampler(config.decoder, rev[-1], 1))
    return nn.Sequential(*layers)


class ConvVAE(nn.Module):
    """Convolutional VAE: (B, bins, frames) in [0, 1] -> code (B, latent_dim) -> same shape."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        ch = config.channels
        cond = config.label_dim if config.conditional else 0
        self.label_embedding = nn.Embedding(config.n_labels, cond) if cond else None

        # The label enters the encoder as a per-channel shift after the first stage's norm. A
        # broadcast label map concatenated to the input would be a constant per-channel offset
        # after the first convolution, which the GroupNorm then removes (bar the border); it
        # would also cost a convolution over label_dim extra channels at full resolution.
        self.label_to_input = nn.Linear(cond, ch[0], bias=False) if cond else None
        stages, width = [], 1
        for c in ch:
            stages.append(_stage(nn.Conv2d(width, c, 3, stride=2, padding=1), c))
            width = c
        self.encoder = nn.Sequential(*stages)
        flat = math.prod(config.bottleneck_shape)
        self.to_stats = nn.Linear(flat, 2 * config.latent_dim)

        self.from_code = nn.Linear(config.latent_dim + cond, flat)
        self.decoder = _decoder(config)

    def _embed(self, labels: Labels, n: int, device: torch.device) -> torch.Tensor | None:
        """Label embedding (n, label_dim), or None for an unconditional model.

        ``labels`` may be indices (n,) or an int, or label weights (n, n_labels) that mix
        embeddings (a one-hot row is the same as its index).
        """
        if self.label_embedding is None:
            return None  # unconditional: labels, if any, carry no information for it
        n_labels = self.config.n_labels
        if labels is None:
            raise ValueError(
                f"this model is conditional on {n_labels} labels: pass labels "
                f"(indices 0..{n_labels - 1}) to encode, decode, forward and sample"
            )
        t = torch.as_tensor(labels, device=device)
        if t.is_floating_point():
            if t.dim() != 2 or t.shape != (n, n_labels):
                raise ValueError(
                    f"label weights of shape {tuple(t.shape)}; expected ({n}, {n_labels})"
                )
            return t.to(self.label_embedding.weight.dtype) @ self.label_embedding.weight
        t = t.long().reshape(-1)
        if t.numel() == 1 and n != 1:
            t = t.expand(n)
        if t.numel() != n:
            raise ValueError(f"{t.numel()} labels for a batch of {n}; give one label per clip")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n_labels):
            raise ValueError(
                f"labels {sorted(set(t.tolist()))} out of range: a conditional model needs label "
                f"indices in 0..{n_labels - 1} (unlabelled clips, -1, cannot be used)"
            )
        return self.label_embedding(t)

    def _check_features(self, x: torch.Tensor) -> None:
        want = (self.config.n_bins, self.config.n_frames)
        if x.dim() != 3 or tuple(x.shape[1:]) != want:
            raise ValueError(
                f"features of shape {tuple(x.shape)}; this model reads (batch, {want[0]}, "
                f"{want[1]}): use the feature config the model was trained with"
            )

    def encode(self, x: torch.Tensor, labels: Labels = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters of features ``x`` (B, bins, frames) -> (mu, logvar), each (B, D)."""
        self._check_features(x)
        hp, wp = self.config.padded_shape
        h = F.pad(x.unsqueeze(1), (0, wp - x.shape[2], 0, hp - x.shape[1]))  # (B, 1, Hp, Wp)
        emb = self._embed(labels, x.shape[0], x.device)
        if emb is not None:
            conv, norm, act = self.encoder[0]
            bias = self.label_to_input(emb.to(h.dtype))[:, :, None, None]  # (B, C0, 1, 1)
            h = self.encoder[1:](act(norm(conv(h)) + bias))
        else:
            h = self.encoder(h)
        h = h.flatten(1)  # (B, C * h * w)
        mu, logvar = self.to_stats(h).chunk(2, dim=1)  # (B, D) each
        # A floor and ceiling on the variance keep exp() finite early in training.
        return mu, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor, labels: Labels = None) -> torch.Tensor:
        """Codes ``z`` (B, latent_dim) -> features (B, bins, frames) in [0, 1]."""
        if z.dim() != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(
                f"codes of shape {tuple(z.shape)}; expected (B, {self.config.latent_dim})"
            )
        emb = self._embed(labels, z.shape[0], z.device)
        if emb is not None:
            z = torch.cat([z, emb.to(z.dtype)], dim=1)  # (B, D + label_dim)
        h = F.silu(self.from_code(z)).view(-1, *self.config.bottleneck_shape)  # (B, C, h, w)
        logits = self.decoder(h)[:, 0]  # (B, Hp, Wp)
        return torch.sigmoid(logits[:, : self.config.n_bins, : self.config.n_frames])

    def forward(
        self, x: torch.Tensor, labels: Labels = None, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, sample z (the mean in eval mode), decode.

        Args:
            noise: eps ~ N(0, I) of shape (B, D) for z = mu + sigma * eps; None draws it from
                the global RNG. Training passes its own so that the draws do not depend on
                how a batch is split over processes.
        Returns:
            (recon (B, bins, frames), mu (B, D), logvar (B, D))
        """
        mu, logvar = self.encode(x, labels)
        z = reparameterize(mu, logvar, noise) if self.training else mu
        return self.decode(z, labels), mu, logvar

    @torch.no_grad()
    def sample(
        self,
        n: int,
        labels: Labels = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Decode ``n`` codes drawn from N(0, temperature^2 I) -> (n, bins, frames)."""
        if n < 1:
            raise ValueError(f"n={n}: ask for at least one sample")
        if temperature < 0:
            raise ValueError(f"temperature={temperature} must be 0 or more")
        device = self.from_code.weight.device
        gen_device = generator.device if generator is not None else device
        z = torch.randn(n, self.config.latent_dim, generator=generator, device=gen_device)
        return self.decode(z.to(device) * temperature, labels)


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """z = mu + sigma * eps; eps is ``noise`` or else drawn from the global RNG; all (B, D)."""
    if noise is None:
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    if noise.shape != mu.shape:
        raise ValueError(f"noise of shape {tuple(noise.shape)}; expected {tuple(mu.shape)}")
    return mu + torch.exp(0.5 * logvar) * noise.to(mu.device)


def vae_loss(
    recon: torch.Tensor,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    settings: LossSettings,
) -> Losses[torch.Tensor]:
    """The negative ELBO with a KL weight, per clip, averaged over the batch.

    ``recon`` is the sum of squared errors over a clip's (bins, frames), i.e. a Gaussian
    likelihood with a fixed variance (``likelihood="laplace"``: the sum of absolute errors,
    a Laplace likelihood with a fixed scale, whose optimum is the median, not the mean);
    per clip so that beta=1 keeps its meaning whatever the batch size, and the numbers are
    comparable across epochs (not across feature shapes or likelihoods).
    ``recon_loss="multiscale"`` replaces it by the multi-resolution spectral distance of
    :mod:`vae.model.spectral_loss` (which reads ``top_db`` to undo the dB mapping).
    ``kl`` is KL(q(z|x) || N(0, I)) summed over latent dims. With ``free_bits`` > 0 the loss
    uses each dim's batch-mean KL floored at ``free_bits`` nats; the reported ``kl`` is the
    true value.

    Args:
        recon, x: (B, bins, frames). mu, logvar: (B, D).
        settings: beta, free_bits, likelihood, recon_loss and top_db.
    Returns:
        The terms (scalar tensors) by name.
    """
    if settings.recon_loss == "multiscale":
        sse = multiscale_spectral(recon, x, settings.top_db).mean()
    else:
        err = recon - x
        laplace = settings.likelihood == "laplace"
        sse = (err.abs() if laplace else err.pow(2)).flatten(1).sum(1).mean()
    kl_dims = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)  # (B, D)
    kl = kl_dims.sum(1).mean()
    free_bits = settings.free_bits
    kl_term = kl_dims.mean(0).clamp(min=free_bits).sum() if free_bits > 0 else kl
    return Losses(loss=sse + settings.beta * kl_term, recon=sse, kl=kl)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def inert_parameters(model: nn.Module) -> set[str]:
    """Conv biases right before a GroupNorm with one channel per group: the norm subtracts
    them again, so they change no output and their true gradient is 0 (AdamW turns rounding
    noise into lr-sized steps); comparisons of two runs' weights leave them out."""
    names = set()
    for name, module in model.named_modules():
        if isinstance(module, nn.Sequential) and len(module) == 3:
            norm = module[1]
            if isinstance(norm, nn.GroupNorm) and norm.num_groups == norm.num_channels:
                names.add(f"{name}.0.bias")
    return names
