"""The judge: a small CNN that names the label of a spectrogram, trained on real clips.

It answers the question a listener would: is a reconstructed or generated "7" heard as a 7?
`evaluate` runs it on real validation clips, on reconstructions after the full audio round
trip, and on clips a conditional model samples for each label.

A judge is a folder: ``judge.pt`` (weights, loaded with ``weights_only=True``) and
``judge.json`` (format version, JudgeConfig, label names, feature config, its validation
accuracy), written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vae.dataset import SpectrogramSet, load_split_tensor
from vae.features import FeatureConfig
from vae.storage import atomic_write_json, write_atomically

JUDGE_FORMAT_VERSION = 1
WEIGHTS_FILE, CONFIG_FILE = "judge.pt", "judge.json"


@dataclass(frozen=True)
class JudgeConfig:
    """The classifier's shape: features (n_bins, n_frames) -> one of n_labels."""

    n_bins: int
    n_frames: int
    n_labels: int
    channels: tuple[int, ...] = (16, 32, 64, 128)
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.n_labels < 2:
            raise ValueError(f"n_labels={self.n_labels}: a judge needs at least 2 labels")
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels={self.channels} must be positive, e.g. (16, 32, 64)")


@dataclass(frozen=True)
class JudgeTraining:
    """How to train a judge. ``augment`` shifts, masks, re-levels and blurs the training
    spectrograms, so that reconstructions (smoother than real clips) are judged fairly."""

    epochs: int = 15
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0
    augment: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(
                f"epochs={self.epochs}, batch_size={self.batch_size}, lr={self.lr}: "
                "each must be positive"
            )


class JudgeNet(nn.Module):
    """Conv blocks (3x3 conv, BatchNorm, SiLU, 2x2 max-pool), global average, linear.

    Inputs of more than 64 x 64 cells are average-pooled 2x2 first: a digit is as clear at
    half the resolution, and the first block costs a quarter.
    """

    def __init__(self, config: JudgeConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        if config.n_bins * config.n_frames > 64 * 64:
            layers.append(nn.AvgPool2d(2, ceil_mode=True))
        c_in = 1
        for c_out in config.channels:
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.SiLU(),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(c_in, config.n_labels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Spectrograms (B, bins, frames) in [0, 1] -> logits (B, n_labels)."""
        h = self.features(x.unsqueeze(1))  # (B, C, bins', frames')
        return self.head(h.mean(dim=(-2, -1)))  # (B, C) -> (B, n_labels)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random time shift, level change, time and frequency masks and blur: (B, bins, frames)."""
    b, bins, frames = x.shape
    shift = int(torch.randint(-frames // 8, frames // 8 + 1, (1,), generator=gen))
    x = torch.roll(x, shift, dims=-1)
    level = (torch.rand(b, 1, 1, generator=gen) - 0.5) * 0.2  # +-0.1: +-8 dB at 80 dB range
    x = torch.where(x > 0, (x + level).clamp(0.0, 1.0), x)
    for dim, size in ((-1, frames), (-2, bins)):
        width = int(torch.randint(0, max(1, size // 8), (1,), generator=gen))
        start = int(torch.randint(0, size - width + 1, (1,), generator=gen))
        x = x.index_fill(dim, torch.arange(start, start + width), 0.0)
    if float(torch.rand(1, generator=gen)) < 0.5:  # reconstructions are smooth
        x = nn.functional.avg_pool2d(x.unsqueeze(1), 3, stride=1, padding=1).squeeze(1)
    return x


@torch.no_grad()
def _accuracy(model: JudgeNet, x: torch.Tensor, y: torch.Tensor, batch: int = 64) -> float:
    model.eval()
    right = sum(
        int((model(x[i : i + batch]).argmax(-1) == y[i : i + batch]).sum())
        for i in range(0, len(x), batch)
    )
    return right / max(len(x), 1)


def train_judge(
    ds: SpectrogramSet,
    out: str | Path,
    training: JudgeTraining = JudgeTraining(),
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train a judge on ``ds``'s train split and save its last epoch in the folder ``out``;
    returns {"val_accuracy", "train_accuracy", "epochs", "seconds"}.

    The val split only measures: picking the epoch best on it would make the accuracy then
    reported on it optimistic. The one-cycle schedule ends at a tiny learning rate, so the
    last epoch is a settled one.

    Raises:
        ValueError: ``ds`` has unlabelled clips, fewer than two labels or no val split.
    """
    if len(ds.label_names) < 2 or (ds.label_indices < 0).any():
        raise ValueError(
            f"{ds.root}: a judge needs every clip labelled, with two labels or more; "
            "preprocess with --labels fsdd or folder"
        )
    x_train, y_train = load_split_tensor(ds, "train")
    x_val, y_val = load_split_tensor(ds, "val")
    if not len(x_val):
        raise ValueError(f"{ds.root}: no validation clips; preprocess with --val-fraction 0.1")
    started = time.perf_counter()
    torch.manual_seed(training.seed)
    gen = torch.Generator().manual_seed(training.seed)
    config = JudgeConfig(*ds.config.shape, n_labels=len(ds.label_names))
    model = JudgeNet(config)
    opt = torch.optim.AdamW(model.parameters(), lr=training.lr, weight_decay=1e-4)
    steps = training.epochs * -(-len(x_train) // training.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, training.lr, total_steps=max(steps, 1))
    for epoch in range(1, training.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        for i in range(0, len(order), training.batch_size):
            idx = order[i : i + training.batch_size]
            xb = _augment(x_train[idx], gen) if training.augment else x_train[idx]
            loss = nn.functional.cross_entropy(model(xb), y_train[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        val = _accuracy(model, x_val, y_val)
        if progress:
            progress({"event": "epoch", "epoch": epoch, "epochs": training.epochs, "val": val})
    report = {
        "val_accuracy": val,
        "train_accuracy": _accuracy(model, x_train, y_train),
        "epochs": training.epochs,
        "seconds": time.perf_counter() - started,
    }
    save_judge(out, model, ds, training, report)
    return report


def save_judge(
    out: str | Path, model: JudgeNet, ds: SpectrogramSet, training: JudgeTraining, report: dict
) -> Path:
    """Write judge.pt then judge.json (last: a folder holding it is complete)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomically(out / WEIGHTS_FILE, lambda f: torch.save(model.state_dict(), f))
    info = {
        "format_version": JUDGE_FORMAT_VERSION,
        "judge_config": dataclasses.asdict(model.config),
        "label_names": list(ds.label_names),
        "feature_config": ds.config.to_dict(),
        "dataset": {"path": str(Path(ds.root).absolute()), "fingerprint": ds.fingerprint},
        "training": dataclasses.asdict(training),
        **report,
    }
    atomic_write_json(out / CONFIG_FILE, info)
    return out


class Judge:
    """A trained judge, ready to name labels of spectrograms made with its features."""

    def __init__(self, model: JudgeNet, info: dict[str, Any]):
        self.model = model.eval()
        self.info = info
        self.label_names: list[str] = list(info["label_names"])
        self.feature_config = FeatureConfig.from_dict(info["feature_config"])

    @classmethod
    def load(cls, path: str | Path) -> Judge:
        """Load a judge folder; ValueError naming the file and the fix when it is unusable."""
        path = Path(path)
        try:
            info = json.loads((path / CONFIG_FILE).read_text())
        except (OSError, ValueError) as err:
            raise ValueError(
                f"{path / CONFIG_FILE}: not a judge ({err}); train one with "
                "`python -m vae judge DATA --out DIR`"
            ) from None
        if info.get("format_version") != JUDGE_FORMAT_VERSION:
            raise ValueError(
                f"{path}: judge format {info.get('format_version')!r} is not "
                f"{JUDGE_FORMAT_VERSION}; retrain it"
            )
        cfg = info["judge_config"]
        model = JudgeNet(JudgeConfig(**{**cfg, "channels": tuple(cfg["channels"])}))
        try:
            state = torch.load(path / WEIGHTS_FILE, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except Exception as err:  # noqa: BLE001 - any unreadable weights file: one message
            raise ValueError(
                f"{path / WEIGHTS_FILE}: unreadable ({err}); retrain the judge"
            ) from None
        return cls(model, info)

    def check_features(self, cfg: FeatureConfig, what: str) -> None:
        """ValueError when ``what`` (a dataset, a checkpoint) has other features than the judge."""
        if cfg.fingerprint() != self.feature_config.fingerprint():
            raise ValueError(
                f"{what}: its features differ from the judge's; train a judge on a dataset "
                "preprocessed with the same settings"
            )

    @torch.no_grad()
    def probabilities(self, feats: torch.Tensor | np.ndarray, batch: int = 64) -> np.ndarray:
        """Label probabilities (B, n_labels) of spectrograms (B, bins, frames)."""
        x = torch.as_tensor(np.asarray(feats, dtype=np.float32))
        out = [torch.softmax(self.model(x[i : i + batch]), dim=-1) for i in range(0, len(x), batch)]
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.label_names)))
