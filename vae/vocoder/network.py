"""A neural phase: a small network that turns features into audio in one pass.

The network (ConvNeXt blocks over frames, a Vocos-style head) predicts a phase for every
STFT bin of every frame, as the angle of two outputs (atan2, kept as a unit complex
number); the magnitude is either the one the input features stand for (only the phase is
learned) or predicted as well. An inverse STFT with the dataset's own n_fft, hop and Hann
window makes the waveform. Optionally a few Griffin-Lim iterations start from that phase
instead of from zero (the hybrid). Griffin-Lim alone stays the fallback and the baseline.

A vocoder is a folder, ``vocoder/`` inside a checkpoint by default: ``vocoder.pt`` (weights,
loaded with ``weights_only=True``) and ``vocoder.json`` (format version, VocoderConfig with
the FeatureConfig it was trained for, its validation figures, its verdict against
Griffin-Lim, training seconds), built aside and renamed into place. Training lives in
``vae.vocoder.training``.

The verdict (:func:`verdict`) decides whether ``--phase auto`` plays it: only a vocoder that
beat Griffin-Lim on the validation copies when it was trained is heard by default; one that
lost, or that carries no verdict (trained before verdicts were kept, or without validation
clips), leaves Griffin-Lim in use, the one phase the in-browser player has too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vae.audio import features as F
from vae.model.checkpoints import feature_differences
from vae.storage import limits
from vae.storage.files import (
    atomic_write_json,
    read_versioned_json,
    write_atomically,
)
from vae.storage.output_folder import VOCODER, check_output_folder, write_output
from vae.storage.safe_load import load_weights

VOCODER_FORMAT_VERSION = 1
VOCODER_DIR = "vocoder"
WEIGHTS_FILE, CONFIG_FILE = "vocoder.pt", "vocoder.json"
MAGNITUDE_MODES = ("input", "predicted")
PHASE_MODES = ("direct", "integrated")


@dataclass(frozen=True)
class VocoderConfig:
    """The network's shape and how its output becomes sound.

    Attributes:
        feature: the FeatureConfig of the features it reads (and of the STFT it inverts).
        width: channels of the backbone.
        layers: ConvNeXt blocks.
        kernel: depthwise kernel size over frames (odd).
        expansion: hidden width of each block's pointwise layers, as a multiple of ``width``.
        magnitude: "input" takes the magnitude from the features (only phase is learned);
            "predicted" lets the head predict the log magnitude as well (Vocos).
        phase: "direct" predicts each frame's phase; "integrated" predicts how far each
            bin's phase moves from one frame to the next (beyond the bin centre's own
            advance) and sums that over frames, as phase vocoders do: a local quantity, so
            easier to learn with a small network and a short budget.
        refine_iters: Griffin-Lim iterations started from the predicted phase (0: none).
    """

    feature: F.FeatureConfig
    width: int = 128
    layers: int = 4
    kernel: int = 7
    expansion: int = 3
    magnitude: str = "input"
    phase: str = "direct"
    refine_iters: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.width >= 1 and self.layers >= 0, f"width={self.width}, layers={self.layers}"),
            (self.kernel >= 1 and self.kernel % 2 == 1, f"kernel={self.kernel} must be odd"),
            (self.expansion >= 1, f"expansion={self.expansion} must be >= 1"),
            (
                self.magnitude in MAGNITUDE_MODES,
                f"magnitude={self.magnitude!r} must be one of {MAGNITUDE_MODES}",
            ),
            (self.phase in PHASE_MODES, f"phase={self.phase!r} must be one of {PHASE_MODES}"),
            (self.refine_iters >= 0, f"refine_iters={self.refine_iters} must be >= 0"),
            # Upper bounds for a config from elsewhere (vae.storage.limits): activations of
            # width x expansion per frame, at most the model's own largest map.
            (self.width <= limits.MAX_CHANNELS, f"width={self.width}: at most "
             f"{limits.MAX_CHANNELS}"),
            (self.layers <= 64 and self.kernel <= 63 and self.expansion <= 16,
             f"layers={self.layers}, kernel={self.kernel}, expansion={self.expansion}: at "
             "most 64, 63 and 16"),
            (self.width * self.expansion * self.feature.n_frames <= limits.MAX_ACTIVATION,
             f"width={self.width} x expansion={self.expansion} over "
             f"{self.feature.n_frames} frames: at most {limits.MAX_ACTIVATION:,} values"),
            (self.refine_iters <= limits.MAX_GRIFFIN_LIM_ITERS,
             f"refine_iters={self.refine_iters}: at most {limits.MAX_GRIFFIN_LIM_ITERS}"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise ValueError(f"vocoder config: {message}")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["feature"] = self.feature.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VocoderConfig:
        """Rebuild from :meth:`to_dict`; unknown fields raise ValueError."""
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown vocoder config fields {unknown}")
        data["feature"] = F.FeatureConfig.from_dict(data["feature"])
        return cls(**data)


class ConvNeXtBlock(nn.Module):
    """Depthwise conv over frames, LayerNorm, pointwise MLP, scaled residual: (B, C, T)."""

    def __init__(self, width: int, kernel: int, expansion: int, scale: float):
        super().__init__()
        self.dw = nn.Conv1d(width, width, kernel, padding=kernel // 2, groups=width)
        self.norm = nn.LayerNorm(width)
        self.up = nn.Linear(width, width * expansion)
        self.down = nn.Linear(width * expansion, width)
        self.scale = nn.Parameter(torch.full((width,), scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dw(x).transpose(1, 2)  # (B, T, C): LayerNorm and Linear act on channels
        h = self.down(nn.functional.gelu(self.up(self.norm(h))))
        return x + (self.scale * h).transpose(1, 2)


class VocoderNet(nn.Module):
    """Features (B, n_bins, frames) -> complex STFT (B, n_stft_bins, frames) -> audio."""

    def __init__(self, config: VocoderConfig):
        super().__init__()
        self.config = config
        cfg = config.feature
        self.embed = nn.Conv1d(cfg.n_bins, config.width, config.kernel, padding=config.kernel // 2)
        self.norm_in = nn.LayerNorm(config.width)
        scale = 1.0 / max(config.layers, 1)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(config.width, config.kernel, config.expansion, scale)
            for _ in range(config.layers)
        )
        self.norm_out = nn.LayerNorm(config.width)
        outputs = 2 + (config.magnitude == "predicted")  # phase as (x, y) [+ log magnitude]
        self.head = nn.Linear(config.width, outputs * cfg.n_stft_bins)
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)
        # Phase advance per frame of a sinusoid at each bin's centre: 2 pi k hop / n_fft.
        advance = 2 * torch.pi * torch.arange(cfg.n_stft_bins) * cfg.hop_length / cfg.n_fft
        self.register_buffer("advance", advance.unsqueeze(-1), persistent=False)  # (bins, 1)

    def outputs(self, feats: torch.Tensor) -> torch.Tensor:
        """Features (B, n_bins, frames) -> the head's raw outputs (B, 2 or 3, n_stft_bins,
        frames): the phase as (x, y) [, the log magnitude]; real numbers only, so exports
        (``vae.export.graphs``) build on this rather than on :meth:`spectrum`."""
        cfg = self.config.feature
        h = self.embed(feats)  # (B, width, frames)
        h = self.norm_in(h.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            h = block(h)
        out = self.head(self.norm_out(h.transpose(1, 2)))  # (B, frames, outputs * bins)
        return out.transpose(1, 2).unflatten(1, (-1, cfg.n_stft_bins))  # (B, outputs, bins, T)

    def spectrum(self, feats: torch.Tensor) -> torch.Tensor:
        """Features (B, n_bins, frames) in [0, 1] -> complex STFT (B, n_stft_bins, frames)."""
        cfg = self.config.feature
        out = self.outputs(feats)  # (B, outputs, bins, T)
        x, y = out[:, 0], out[:, 1]
        if self.config.phase == "integrated":
            step = torch.atan2(y, x) + self.advance  # (B, bins, T): phase moved since t - 1
            phase = torch.cumsum(step, dim=-1)
            unit = torch.polar(torch.ones_like(phase), phase)
        else:  # atan2(y, x) as a unit complex number: no angle is formed, no wrap-around
            unit = torch.complex(x, y) / torch.sqrt(x.square() + y.square() + 1e-8)
        if self.config.magnitude == "predicted":
            mag = torch.exp(out[:, 2].clamp(max=12.0))
        else:
            mag = F.features_to_magnitude(feats, cfg)  # (B, n_stft_bins, frames)
        return mag * unit

    def refined(self, feats: torch.Tensor, iters: int, length: int | None = None) -> torch.Tensor:
        """Audio (B, length) of ``iters`` Griffin-Lim iterations started from the network's
        phase (the hybrid), towards the magnitude the features stand for (a predicted
        magnitude may lean on phase cancellations that Griffin-Lim would undo)."""
        cfg = self.config.feature
        spec = self.spectrum(feats)  # (B, n_stft_bins, frames)
        mag = F.features_to_magnitude(feats, cfg)
        return griffin_lim(mag, cfg, iters, start=spec, length=length)

    def forward(self, feats: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Features (B, n_bins, frames) -> audio (B, length), ``clip_samples`` by default."""
        cfg = self.config.feature
        return torch.istft(
            self.spectrum(feats),
            cfg.n_fft,
            cfg.hop_length,
            window=self.window,
            center=True,
            length=length or cfg.clip_samples,
        )


def griffin_lim(
    mag: torch.Tensor,
    cfg: F.FeatureConfig,
    n_iter: int,
    momentum: float | None = None,
    start: torch.Tensor | None = None,
    length: int | None = None,
) -> torch.Tensor:
    """Fast Griffin-Lim that may start from a given phase (torchaudio's cannot).

    The same update as ``torchaudio.functional.griffinlim``; with ``start=None`` it starts
    from zero phase as ``features.magnitude_to_waveform`` does.

    Args:
        mag: (..., n_stft_bins, frames) linear magnitude.
        start: (..., n_stft_bins, frames) complex spectrum whose phase starts the search.
        momentum: default ``cfg.griffin_lim_momentum``.
        length: samples out, default ``cfg.clip_samples``.

    Returns:
        (..., length) audio; differentiable, so training can look through it.
    """
    momentum = cfg.griffin_lim_momentum if momentum is None else momentum
    length = length or cfg.clip_samples
    window = F.stft_window(cfg.n_fft).to(mag.device)
    lead = mag.shape[:-2]
    mag = mag.reshape(-1, *mag.shape[-2:])  # (B, bins, frames)

    def istft(spec: torch.Tensor) -> torch.Tensor:
        return torch.istft(
            spec, cfg.n_fft, cfg.hop_length, window=window, center=True, length=length
        )

    if start is None:
        angles = torch.ones_like(mag, dtype=torch.complex64)
    else:
        start = start.reshape(mag.shape)
        angles = start / (start.abs() + 1e-16)
    previous = torch.zeros((), dtype=torch.complex64)
    for _ in range(n_iter):
        rebuilt = torch.stft(
            istft(mag * angles), cfg.n_fft, cfg.hop_length, window=window, return_complex=True
        )
        angles = rebuilt - previous * (momentum / (1 + momentum))
        angles = angles / (angles.abs() + 1e-16)
        previous = rebuilt
    return istft(mag * angles).reshape(*lead, -1)


def verdict(val: dict[str, Any] | None) -> dict[str, Any]:
    """Whether a vocoder beat Griffin-Lim on copies of validation clips: a lower median
    log-spectral distance and a lower median spectral convergence than Griffin-Lim alone on
    the same clips.

    Args:
        val: the figures of ``vae.vocoder.training.compare_phases``, or None (none measured).

    Returns:
        {"won", "measured": True, "clips", "lsd_db": {"vocoder", "griffin_lim"}, "sc": {...}}
        (medians), or {"won": False, "measured": False} when nothing was measured.
    """
    if not val:
        return {"won": False, "measured": False}
    figures = {
        key: {name: float(val[name][key]["median"]) for name in ("vocoder", "griffin_lim")}
        for key in ("lsd_db", "sc")
    }
    won = all(f["vocoder"] < f["griffin_lim"] for f in figures.values())
    return {"won": won, "measured": True, "clips": int(val["clips"]), **figures}


def describe_verdict(info: dict[str, Any]) -> str:
    """The verdict in ``info`` (a vocoder.json's content) as one phrase, e.g. "the vocoder
    lost to Griffin-Lim on the validation copies (LSD 3.90 vs 3.12 dB, SC 0.210 vs 0.067)"."""
    found = info.get("verdict")
    if not isinstance(found, dict) or found.get("measured") is not True:
        return (
            "the vocoder has no verdict against Griffin-Lim (trained before verdicts were kept, "
            "or without validation clips)"
        )
    try:
        lsd, sc = found["lsd_db"], found["sc"]
        figures = (
            f"LSD {float(lsd['vocoder']):.2f} vs {float(lsd['griffin_lim']):.2f} dB, "
            f"SC {float(sc['vocoder']):.3f} vs {float(sc['griffin_lim']):.3f}"
        )
    except (KeyError, TypeError, ValueError):
        figures = "its figures are unreadable"
    how = "beat" if found.get("won") is True else "lost to"
    return f"the vocoder {how} Griffin-Lim on the validation copies ({figures})"


class Vocoder:
    """A trained vocoder, ready to turn features made with its FeatureConfig into audio."""

    def __init__(self, net: VocoderNet, info: dict[str, Any] | None = None):
        self.net = net.eval()
        self.config = net.config
        self.info = dict(info or {})

    @property
    def won(self) -> bool:
        """Whether it beat Griffin-Lim when trained (:func:`verdict`); False without a
        verdict, so ``--phase auto`` keeps Griffin-Lim for an old or unmeasured vocoder."""
        found = self.info.get("verdict")
        return isinstance(found, dict) and found.get("won") is True

    @torch.no_grad()
    def to_waveform(
        self, feats: torch.Tensor | np.ndarray, refine_iters: int | None = None
    ) -> torch.Tensor:
        """Features (..., n_bins, frames) -> audio (..., clip_samples), on the CPU.

        ``refine_iters`` Griffin-Lim iterations (default the config's) start from the
        network's phase.
        """
        cfg = self.config.feature
        if not torch.is_tensor(feats):  # a copy: memory-mapped arrays are read-only
            feats = torch.from_numpy(np.array(feats, dtype=np.float32))
        feats = feats.float().cpu()
        lead = feats.shape[:-2]
        flat = feats.reshape(-1, *feats.shape[-2:])  # (B, bins, frames)
        iters = self.config.refine_iters if refine_iters is None else refine_iters
        waves = self.net.refined(flat, iters) if iters else self.net(flat)
        return waves.reshape(*lead, cfg.clip_samples)

    def check_features(self, cfg: F.FeatureConfig, what: str) -> None:
        """ValueError when ``what`` (a checkpoint, a dataset) has other features than this."""
        diff = feature_differences(self.config.feature, cfg)
        if diff:
            raise ValueError(
                f"{self.info.get('path', 'vocoder')}: trained for features "
                f"{self.config.feature.fingerprint()}, but {what} uses {cfg.fingerprint()} "
                f"(vocoder vs {what}: {', '.join(diff)}); train a vocoder for it with "
                "`python -m vae vocoder DATA --checkpoint CKPT`"
            )


def vocoder_dir(checkpoint: str | Path) -> Path:
    """Where a checkpoint keeps its vocoder."""
    return Path(checkpoint) / VOCODER_DIR


def has_vocoder(path: str | Path) -> bool:
    """Whether ``path`` (a vocoder folder, or a checkpoint holding one) has a vocoder."""
    path = Path(path)
    return (path / CONFIG_FILE).is_file() or (path / VOCODER_DIR / CONFIG_FILE).is_file()


def check_vocoder_out(out: str | Path) -> None:
    """Refuse ``out`` unless it is missing, empty or a vocoder (a dataset, a checkpoint or a
    folder of other files is never replaced); called before training spends its budget.

    Raises:
        ValueError: one line naming the folder, what it holds and the fix.
    """
    check_output_folder(out, VOCODER)


def save_vocoder(out: str | Path, net: VocoderNet, report: dict[str, Any]) -> Path:
    """Write the folder ``out`` (vocoder.pt, then vocoder.json) aside and put it in place
    (:func:`vae.storage.output_folder.write_output`): an older vocoder's files are replaced, any
    other
    file in the folder is kept, and a folder that is not a vocoder is refused.

    Raises:
        ValueError: ``out`` holds something else (a dataset, a checkpoint, user files).
    """
    info = {
        "format_version": VOCODER_FORMAT_VERSION,
        "vocoder_config": net.config.to_dict(),
        "feature_config": net.config.feature.to_dict(),
        "parameters": sum(p.numel() for p in net.parameters()),
        **report,
    }

    def write(tmp: Path) -> None:
        write_atomically(tmp / WEIGHTS_FILE, lambda f: torch.save(net.state_dict(), f))
        atomic_write_json(tmp / CONFIG_FILE, info)

    return write_output(out, VOCODER, write)


def load_vocoder(path: str | Path, feature_config: F.FeatureConfig | None = None) -> Vocoder:
    """Load a vocoder folder (or the one inside a checkpoint folder).

    Raises:
        ValueError: naming the file and the fix, for a missing or unreadable folder, an
            unknown format version, or (given ``feature_config``) other features.
    """
    path = Path(path)
    if not (path / CONFIG_FILE).is_file() and (path / VOCODER_DIR / CONFIG_FILE).is_file():
        path = path / VOCODER_DIR
    fix = "train one with `python -m vae vocoder DATA --checkpoint CKPT`"
    info = read_versioned_json(path / CONFIG_FILE, VOCODER_FORMAT_VERSION, "vocoder", fix)
    try:
        config = VocoderConfig.from_dict(info["vocoder_config"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path / CONFIG_FILE}: bad vocoder config ({err}); {fix}") from None
    net = VocoderNet(config)
    load_weights(
        net, path / WEIGHTS_FILE, limits.MAX_WEIGHTS_BYTES, f"the vocoder in {CONFIG_FILE}", fix
    )
    vocoder = Vocoder(net, {**info, "path": str(path)})
    if feature_config is not None:
        vocoder.check_features(feature_config, "the checkpoint")
    return vocoder
