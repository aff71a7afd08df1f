"""A training run's checkpoint folder kept current after every epoch (rank 0 writes it).

The order is what makes a kill at any moment safe: the epoch's metrics line, then model.pt
and config.json (``vae.model.checkpoints.save_checkpoint``), then latents.npz and the learned
prior fitted to it. A save that fails (out of space) takes its metrics line back at once
(``vae.harness.line_then_save``); latents older than model.pt (a run killed between the
two) are found by :func:`latents_current`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vae.audio.features import FeatureConfig
from vae.data.dataset import SpectrogramSet
from vae.harness import line_then_save
from vae.model import checkpoints as ck
from vae.model.conv_vae import ModelConfig
from vae.model.prior import PRIOR_FILE, fit_prior, write_prior
from vae.training.train_config import TrainConfig


def save_epoch(
    out: Path,
    record: dict[str, Any],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    feature_config: FeatureConfig,
    model_config: ModelConfig,
    train_config: TrainConfig,
    label_names: list[str],
    dataset_info: dict[str, Any],
    step: int,
) -> None:
    """The epoch's metrics line ``record``, then model.pt, then config.json.

    Raises:
        OSError: the save failed (out of space); the metrics line was taken back first.
    """

    def save() -> None:
        ck.save_checkpoint(
            out,
            model=model,
            optimizer=optimizer,
            epoch=record["epoch"],
            feature_config=feature_config,
            model_config=model_config,
            train_config=train_config,
            label_names=label_names,
            dataset_info=dataset_info,
            extra={"step": step},
        )

    # out of space: the epoch's line must not claim a checkpoint
    line_then_save(out / ck.METRICS_FILE, record, save, forget=lambda: forget_unsaved(out))


def forget_unsaved(out: Path) -> None:
    """After a failed save, drop the metrics lines past the epoch model.pt really holds,
    so readers of metrics.jsonl (the app) name the checkpoint that is kept. Best effort:
    a kill cannot do this, and resuming trims them anyway."""
    try:
        saved = ck.load_checkpoint(out).epoch if ck.has_checkpoint(out) else 0
        ck.trim_metrics(out, saved)
    except (OSError, ValueError):
        pass


def save_latents(
    out: Path, means: np.ndarray, ds: SpectrogramSet, conditional: bool, seed: int
) -> None:
    """latents.npz of the posterior means (N, D) of every clip of ``ds``, then the learned
    prior fitted to the train split's means (``conditional``: one per label)."""
    ck.write_latents(out, means, ds.label_indices, ds.ids)
    rows = ds.split_indices("train")
    fitted = fit_prior(means[rows], ds.label_indices[rows], conditional, seed)
    if fitted is not None:
        write_prior(out, fitted)
    else:  # too few clips: a prior of an earlier epoch must not outlive its model
        (out / PRIOR_FILE).unlink(missing_ok=True)


def latents_current(out: Path) -> bool:
    """Whether latents.npz is there and no older than model.pt: a run killed (or out of
    space) between the two leaves the previous epoch's latents behind."""
    latents, weights = out / ck.LATENTS_FILE, out / ck.WEIGHTS_FILE
    if not latents.is_file():
        return False
    return not weights.is_file() or latents.stat().st_mtime_ns >= weights.stat().st_mtime_ns
