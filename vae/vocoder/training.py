"""Training a vocoder (``vae.vocoder.network``) on a dataset's own clips, within a time budget, and
the figures that decide whether it beats Griffin-Lim.

The loss is a multi-resolution STFT loss against the real waveform (log-magnitude L1 plus
spectral convergence, at half, once and twice the dataset's FFT size). Inputs are the real
features of the clip, half of them blurred and noised: decoder outputs are smoother than
real spectrograms, and the vocoder must turn those into sound too.

The figures are those of copies of real clips: stored features -> audio -> STFT magnitude,
compared with the magnitude the features stand for (log-spectral distance, spectral
convergence), as ``vae.evaluation.evaluate`` measures Griffin-Lim alone. The vocoder's verdict
(``vae.vocoder.network.verdict``: lower medians than Griffin-Lim on both) is saved with them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vae.audio import features as F
from vae.audio.metrics import log_spectral_distance, spectral_convergence, summarise
from vae.data.dataset import SpectrogramSet
from vae.harness import Budget, Every
from vae.progress import OnEvent
from vae.vocoder.network import (
    Vocoder,
    VocoderConfig,
    VocoderNet,
    check_vocoder_out,
    save_vocoder,
    verdict,
)


@dataclass(frozen=True)
class VocoderTraining:
    """How to train a vocoder.

    Attributes:
        seconds: time budget; training stops at the first step past it.
        max_steps: stop after this many steps too (0: only the time budget).
        batch_size: clips per step.
        lr: peak AdamW learning rate (linear warm-up, cosine decay over the budget).
        augment: share of inputs blurred and noised like decoder outputs.
        crop_frames: longer clips are trained on random crops of this many frames.
        unroll: Griffin-Lim iterations trained through after the network, so that it learns
            a start for the hybrid (0: the network's own output is trained).
        val_clips: validation clips measured at the end (0: none).
        seed: initialisation, batches and augmentation.
    """

    seconds: float = 300.0
    max_steps: int = 0
    batch_size: int = 16
    lr: float = 2e-3
    augment: float = 0.5
    crop_frames: int = 160
    unroll: int = 0
    val_clips: int = 300
    seed: int = 0

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.batch_size < 1 or self.lr <= 0 or self.crop_frames < 8:
            raise ValueError(
                f"seconds={self.seconds}, batch_size={self.batch_size}, lr={self.lr}, "
                f"crop_frames={self.crop_frames}: each must be positive (crop_frames >= 8)"
            )
        if not 0 <= self.augment <= 1:
            raise ValueError(f"augment={self.augment} must be a share in [0, 1]")


# ------------------------------------------------------------------------------ loss


def _magnitudes(waves: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """STFT magnitude (B, n_fft // 2 + 1, frames) of waves (B, samples)."""
    window = F.stft_window(n_fft).to(waves.device)
    spec = torch.stft(waves, n_fft, hop, window=window, return_complex=True)
    return torch.sqrt(spec.real.square() + spec.imag.square() + 1e-12)


def resolutions(cfg: F.FeatureConfig) -> list[tuple[int, int]]:
    """(n_fft, hop) pairs of the loss: half, once and twice the dataset's own."""
    out = [(cfg.n_fft // 2, max(cfg.hop_length // 2, 1)), (cfg.n_fft, cfg.hop_length)]
    if 2 * cfg.n_fft <= cfg.clip_samples:
        out.append((2 * cfg.n_fft, 2 * cfg.hop_length))
    return [r for r in out if r[0] >= 16]


def multi_resolution_loss(
    est: torch.Tensor, ref: torch.Tensor, cfg: F.FeatureConfig
) -> torch.Tensor:
    """Mean over resolutions of log-magnitude L1 + spectral convergence: (B, samples) x2 -> ()."""
    total = est.new_zeros(())
    pairs = resolutions(cfg)
    for n_fft, hop in pairs:
        s_est, s_ref = _magnitudes(est, n_fft, hop), _magnitudes(ref, n_fft, hop)
        # The floor of the features (-top_db re a full-scale sine) at this FFT size.
        floor = n_fft / 4 * 10 ** (-cfg.top_db / 20)
        log_l1 = (torch.log(s_est + floor) - torch.log(s_ref + floor)).abs().mean()
        sc = (s_ref - s_est).norm() / s_ref.norm().clamp(min=1e-8)
        total = total + log_l1 + sc
    return total / len(pairs)


# ------------------------------------------------------------------------------ batches


def _augment(x: torch.Tensor, share: float, gen: torch.Generator) -> torch.Tensor:
    """Blur (3 x 3 mean) and lightly noise a random ``share`` of features (B, bins, frames)."""
    pick = torch.rand(len(x), generator=gen) < share
    if not pick.any():
        return x
    soft = nn.functional.avg_pool2d(x[pick].unsqueeze(1), 3, stride=1, padding=1).squeeze(1)
    soft = soft + 0.02 * torch.randn(soft.shape, generator=gen)
    out = x.clone()
    out[pick] = soft.clamp(0.0, 1.0)
    return out


def _batch(
    ds: SpectrogramSet, rows: np.ndarray, crop: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, int | None]:
    """(features (B, bins, T), waves (B, samples), istft length or None) of ``rows``,
    cropped to ``crop`` frames when clips are longer."""
    rows = np.sort(rows)  # memory-mapped: read in file order
    feats = torch.from_numpy(np.asarray(ds.features[rows], dtype=np.float32))
    waves = torch.from_numpy(np.asarray(ds.waveforms[rows], dtype=np.float32))
    frames, hop = feats.shape[-1], ds.config.hop_length
    if frames <= crop:
        return feats, waves, None
    start = int(torch.randint(0, frames - crop + 1, (1,), generator=gen))
    length = (crop - 1) * hop  # a centred STFT's frame f sits at sample f * hop
    feats = feats[..., start : start + crop]
    return feats, waves[:, start * hop : start * hop + length], length


# ------------------------------------------------------------------------------ training


def train_vocoder(
    ds: SpectrogramSet,
    out: str | Path,
    config: VocoderConfig | None = None,
    training: VocoderTraining = VocoderTraining(),
    progress: OnEvent | None = None,
) -> dict[str, Any]:
    """Train a vocoder on ``ds``'s train split within ``training.seconds``, measure it
    beside Griffin-Lim on the val split, and save it in the folder ``out``.

    Progress events: {"event": "step", "step", "seconds", "budget", "loss"} about twice a
    second, then {"event": "measure"} before the validation figures.

    Returns:
        {"steps", "seconds", "final_loss", "val": {"clips", "griffin_lim", "vocoder",
        ...}, "verdict": {"won", ...}} as stored in vocoder.json (``vae.vocoder.network.verdict``:
        whether it beat Griffin-Lim on the val copies; not won without val clips).

    Raises:
        ValueError: ``config`` was made for other features than ``ds``; ``out`` holds
            something other than a vocoder (checked before training).
    """
    check_vocoder_out(out)
    config = config or VocoderConfig(feature=ds.config)
    if config.feature.fingerprint() != ds.config.fingerprint():
        raise ValueError(
            f"{ds.root}: its features differ from the vocoder config's; build the config "
            "from the dataset's FeatureConfig"
        )
    train_rows = ds.split_indices("train")
    if not len(train_rows):
        train_rows = ds.split_indices("all")
    torch.manual_seed(training.seed)
    gen = torch.Generator().manual_seed(training.seed)
    net = VocoderNet(config)
    opt = torch.optim.AdamW(net.parameters(), lr=training.lr, weight_decay=1e-4)
    budget = Budget(training.seconds, training.max_steps)
    report_due = Every(0.5, budget.started)
    step, loss_avg = 0, None
    net.train()
    while (done := budget.spent(step)) < 1.0:
        warm = min(1.0, (step + 1) / 50)
        for group in opt.param_groups:
            group["lr"] = training.lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * done)))
        pick = torch.randint(0, len(train_rows), (training.batch_size,), generator=gen)
        feats, waves, length = _batch(ds, train_rows[pick.numpy()], training.crop_frames, gen)
        feats = _augment(feats, training.augment, gen)
        if training.unroll:
            est = net.refined(feats, training.unroll, length)  # (B, samples)
        else:
            est = net(feats, length)
        loss = multi_resolution_loss(est, waves, config.feature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        value = loss.item()
        loss_avg = value if loss_avg is None else 0.95 * loss_avg + 0.05 * value
        now = time.perf_counter()
        if progress and report_due.due(now):
            progress(
                {
                    "event": "step",
                    "step": step,
                    "seconds": budget.elapsed(now),
                    "budget": training.seconds,
                    "loss": loss_avg,
                }
            )
    seconds = budget.elapsed()
    net.eval()
    if progress:
        progress({"event": "measure"})
    report: dict[str, Any] = {
        "training": {**vars(training)},
        "steps": step,
        "seconds": seconds,
        "final_loss": loss_avg,
        "dataset": {"path": str(Path(ds.root).absolute()), "fingerprint": ds.fingerprint},
    }
    if training.val_clips:
        report["val"] = compare_phases(Vocoder(net), ds, "val", training.val_clips)
    # Whether --phase auto plays it: only where it beat Griffin-Lim on these copies.
    report["verdict"] = verdict(report.get("val"))
    save_vocoder(out, net, report)
    return report


# ------------------------------------------------------------------------------ figures


def copy_figures(
    feats: torch.Tensor,
    cfg: F.FeatureConfig,
    to_audio: Callable[[torch.Tensor], torch.Tensor | np.ndarray],
    batch_size: int = 64,
) -> dict[str, Any]:
    """LSD (dB) and spectral convergence of copies of clips: features (N, bins, frames) ->
    ``to_audio`` -> STFT magnitude, against the magnitude the features stand for.

    Returns:
        {"lsd_db": {median, mean, p90}, "sc": {...}, "ms_per_clip": float}
    """
    floor = F.magnitude_floor(cfg)
    lsd, sc, spent = [], [], 0.0
    for start in range(0, len(feats), batch_size):
        batch = feats[start : start + batch_size]
        t0 = time.perf_counter()
        waves = torch.as_tensor(np.asarray(to_audio(batch), dtype=np.float32))
        spent += time.perf_counter() - t0
        ref = F.features_to_magnitude(batch, cfg)  # (B, n_stft_bins, frames)
        est = F.stft_magnitude(waves, cfg)
        lsd.append(log_spectral_distance(ref, est, floor).numpy())
        sc.append(spectral_convergence(ref, est).numpy())
    return {
        "lsd_db": summarise(np.concatenate(lsd)),
        "sc": summarise(np.concatenate(sc)),
        "ms_per_clip": 1000 * spent / max(len(feats), 1),
    }


def _split_features(ds: SpectrogramSet, split: str, max_clips: int | None) -> torch.Tensor:
    rows = ds.split_indices(split)
    if not len(rows):
        raise ValueError(f"dataset {ds.root} has no clips in split {split!r}")
    if max_clips and len(rows) > max_clips:  # evenly spread, so every label is in
        rows = rows[np.linspace(0, len(rows) - 1, max_clips).round().astype(np.int64)]
    return torch.from_numpy(np.asarray(ds.features[rows], dtype=np.float32))


def compare_phases(
    vocoder: Vocoder,
    ds: SpectrogramSet,
    split: str = "val",
    max_clips: int | None = None,
    refine: tuple[int, ...] = (8, 16, 32),
) -> dict[str, Any]:
    """Figures of copies of ``split``'s clips with Griffin-Lim alone, with the vocoder as
    configured and, as the hybrid, with ``refine`` Griffin-Lim iterations after it.

    Returns:
        {"clips", "griffin_lim": {...}, "vocoder": {...}, "hybrid_<k>": {...}, ...} as
        :func:`copy_figures`; "vocoder" is what ``vocoder.to_waveform`` plays.
    """
    cfg = vocoder.config.feature
    vocoder.check_features(ds.config, f"dataset {ds.root}")
    feats = _split_features(ds, split, max_clips)
    out: dict[str, Any] = {"split": split, "clips": len(feats)}
    out["griffin_lim"] = copy_figures(feats, cfg, lambda x: F.features_to_waveform(x, cfg))
    out["vocoder"] = copy_figures(feats, cfg, vocoder.to_waveform)
    for k in refine:
        if k != vocoder.config.refine_iters:
            out[f"hybrid_{k}"] = copy_figures(feats, cfg, lambda x, k=k: vocoder.to_waveform(x, k))
    out["refine_iters"] = vocoder.config.refine_iters
    return out
