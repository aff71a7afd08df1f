"""One training run, epoch by epoch: batches, validation, then a metrics line, the checkpoint
and the latents after each epoch.

:func:`vae.train.train` prepares the run (lock, resume, configs) and hands it to a
:class:`Trainer`; nothing here knows about command lines or the app.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vae import checkpoints as ck
from vae.dataset import SpectrogramSet, load_split_tensor
from vae.model import ConvVAE, ModelConfig, count_parameters, vae_loss

if TYPE_CHECKING:
    from vae.train import TrainConfig

Progress = Callable[[dict[str, Any]], None]
# Clips per no-grad forward pass (validation, latents). Profiled on FSDD (small model, 2
# cores): 256 took 2.8 s to encode 2,700 clips, 32 took 1.0 s; the activations of a large
# batch fall out of the CPU caches.
EVAL_BATCH = 32
LOSS_KEYS = ("loss", "recon", "kl")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@torch.no_grad()
def evaluate(
    model: ConvVAE,
    x: torch.Tensor,
    y: torch.Tensor | None,
    beta: float,
    free_bits: float,
    device: torch.device,
) -> tuple[dict[str, float], torch.Tensor]:
    """Mean per-clip losses over clips ``x`` (n, bins, frames) with labels ``y`` (n,) or None,
    in eval mode (z = mu), and the posterior means (n, D) on the cpu."""
    model.eval()
    sums, means = torch.zeros(3, dtype=torch.float64), []
    for i in range(0, len(x), EVAL_BATCH):
        xb = x[i : i + EVAL_BATCH].to(device)
        yb = y[i : i + EVAL_BATCH].to(device) if y is not None else None
        recon, mu, logvar = model(xb, yb)
        out = vae_loss(recon, xb, mu, logvar, beta, free_bits)
        sums += torch.stack([out[k].double().cpu() for k in LOSS_KEYS]) * len(xb)
        means.append(mu.float().cpu())
    n = max(len(x), 1)
    stats = {k: float(v) / n for k, v in zip(LOSS_KEYS, sums, strict=True)}
    return stats, torch.cat(means) if means else torch.zeros(0, model.config.latent_dim)


@torch.no_grad()
def encode_means(
    model: ConvVAE, x: torch.Tensor, y: torch.Tensor | None, device: torch.device
) -> torch.Tensor:
    """Posterior means (n, D) on the cpu of clips ``x`` (n, bins, frames); encoder only."""
    model.eval()
    means = [torch.zeros(0, model.config.latent_dim)]
    for i in range(0, len(x), EVAL_BATCH):
        yb = y[i : i + EVAL_BATCH].to(device) if y is not None else None
        means.append(model.encode(x[i : i + EVAL_BATCH].to(device), yb)[0].float().cpu())
    return torch.cat(means)


class Trainer:
    """A run in progress: splits in memory, model, optimizer, the checkpoint folder it keeps.

    Args:
        resume: the model.pt dict of the checkpoint to continue (weights, optimizer, rng),
            or None for a fresh model seeded with ``cfg.seed``.
    """

    def __init__(
        self,
        ds: SpectrogramSet,
        out: Path,
        cfg: TrainConfig,
        model_config: ModelConfig,
        label_names: list[str],
        device: torch.device,
        emit: Progress,
        stop: Callable[[], bool],
        resume: dict[str, Any] | None = None,
    ) -> None:
        self.ds, self.out, self.cfg, self.device = ds, out, cfg, device
        self.model_config, self.label_names, self.emit, self.stop = (
            model_config, label_names, emit, stop
        )  # fmt: skip
        torch.manual_seed(cfg.seed)
        self.model = ConvVAE(model_config).to(device)
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.start = 1
        if resume is not None:
            self.start = int(resume["epoch"]) + 1
            self.model.load_state_dict(resume["model"])
            self.opt.load_state_dict(resume["optimizer"])
            for group in self.opt.param_groups:  # a resumed run may change them
                group["lr"], group["weight_decay"] = cfg.lr, cfg.weight_decay
            torch.set_rng_state(resume["rng"].cpu())
            if device.type == "cuda" and "cuda_rng" in resume:
                torch.cuda.set_rng_state(resume["cuda_rng"].cpu(), device)
        # Whole splits in memory: (n, bins, frames) float32 and (n,) label indices.
        self.parts = {s: load_split_tensor(ds, s) for s in ("train", "val")}
        self.n, self.n_val = len(self.parts["train"][0]), len(self.parts["val"][0])
        if self.n == 0:
            raise ValueError(f"{ds.root}: no clips in the train split; preprocess more clips")
        self.batches = math.ceil(self.n / cfg.batch_size)
        self.dataset_info = {
            "path": str(Path(ds.root).absolute()),
            "fingerprint": ds.fingerprint,
            "train_clips": self.n,
            "val_clips": self.n_val,
        }

    def _labels(self, y: torch.Tensor) -> torch.Tensor | None:
        return y.to(self.device) if self.model_config.conditional else None

    def _diverged(self, what: str, epoch: int) -> TrainingDiverged:
        fix = f"a lower --lr (now {self.cfg.lr}) or a longer beta warm-up"
        if epoch == 1:
            return TrainingDiverged(
                f"{what} at epoch 1; no checkpoint was written: train with {fix}"
            )
        return TrainingDiverged(
            f"{what} at epoch {epoch}; the checkpoint of epoch {epoch - 1} in {self.out} is kept: "
            f"resume it with {fix}"
        )

    def train_epoch(self, epoch: int) -> tuple[list[float], float] | None:
        """One pass over the train split; (mean loss, recon, kl) and the last beta, or None
        when stopped."""
        cfg, bs, batches = self.cfg, self.cfg.batch_size, self.batches
        x_train, y_train = self.parts["train"]
        self.model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = torch.randperm(self.n, generator=gen)
        sums, beta = torch.zeros(3, dtype=torch.float64), cfg.beta
        for b in range(batches):
            if self.stop():
                return None
            idx = order[b * bs : (b + 1) * bs]
            x = x_train[idx].to(self.device)  # (B, bins, frames)
            beta = cfg.beta_at(epoch, b, batches)
            recon, mu, logvar = self.model(x, self._labels(y_train[idx]))
            losses = vae_loss(recon, x, mu, logvar, beta, cfg.free_bits)
            values = torch.stack([losses[k].detach() for k in LOSS_KEYS])
            values = values.double().cpu()  # (3,) loss, recon, kl
            if not torch.isfinite(values).all():
                raise self._diverged(f"loss became {values[0].item()} in batch {b + 1}", epoch)
            self.opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            norm = torch.nn.utils.clip_grad_norm_(
                self.model.parameters(), cfg.grad_clip or math.inf
            )
            self.opt.step()
            sums += values * len(idx)
            loss, recon_v, kl = values.tolist()
            step = (epoch - 1) * batches + b + 1
            if cfg.log_every and step % cfg.log_every == 0:
                line = {"event": "step", "epoch": epoch, "batch": b + 1, "batches": batches}
                line["step"] = step
                line.update(loss=loss, recon=recon_v, kl=kl, beta=beta, grad_norm=float(norm))
                ck.append_jsonl(self.out / ck.METRICS_FILE, line)
            self.emit(
                {"event": "batch", "epoch": epoch, "batch": b + 1, "batches": batches, "loss": loss}
            )
        return (sums / self.n).tolist(), beta

    def finish_epoch(self, epoch: int, train_stats: list[float], beta: float, t0: float) -> dict:
        """Validate, log the epoch, save the checkpoint and the latents; returns the record."""
        x_val, y_val = self.parts["val"]
        val, _ = evaluate(
            self.model, x_val, self._labels(y_val), beta, self.cfg.free_bits, self.device
        )
        if self.n_val and not all(math.isfinite(v) for v in val.values()):
            raise self._diverged(f"validation loss became {val['loss']}", epoch)
        record = {"event": "epoch", "epoch": epoch}
        for i, key in enumerate(LOSS_KEYS):
            record[f"train_{key}"] = train_stats[i]
        for key in LOSS_KEYS:
            record[f"val_{key}"] = val[key] if self.n_val else None
        record.update(beta=beta, lr=self.opt.param_groups[0]["lr"])
        record.update(seconds=time.perf_counter() - t0, time=ck.utc_now())
        ck.append_jsonl(self.out / ck.METRICS_FILE, record)  # then model.pt, then config.json
        extra = {"step": epoch * self.batches, "rng": torch.get_rng_state()}
        if self.device.type == "cuda":
            extra["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        try:
            ck.save_checkpoint(
                self.out,
                model=self.model,
                optimizer=self.opt,
                epoch=epoch,
                feature_config=self.ds.config,
                model_config=self.model_config,
                train_config=self.cfg,
                label_names=self.label_names,
                dataset_info=self.dataset_info,
                extra=extra,
            )
        except OSError:  # out of space: the epoch's line must not claim a checkpoint
            self.forget_unsaved()
            raise
        self.write_latents()
        return record

    def forget_unsaved(self) -> None:
        """After a failed save, drop the metrics lines past the epoch model.pt really holds,
        so readers of metrics.jsonl (the app) name the checkpoint that is kept. Best effort:
        a kill cannot do this, and resuming trims them anyway."""
        try:
            saved = ck.load_checkpoint(self.out).epoch if ck.has_checkpoint(self.out) else 0
            ck.trim_metrics(self.out, saved)
        except (OSError, ValueError):
            pass

    def write_latents(self) -> None:
        """latents.npz: posterior means of every clip in dataset order."""
        means = np.zeros((len(self.ds), self.model_config.latent_dim), np.float32)
        for split, (x, y) in self.parts.items():
            mu = encode_means(self.model, x, self._labels(y), self.device)
            means[self.ds.split_indices(split)] = mu.numpy()  # (n_split, D)
        ck.write_latents(self.out, means, self.ds.label_indices, self.ds.ids)

    def run(self) -> tuple[int, list[dict[str, Any]], bool]:
        """Train up to ``cfg.epochs``; returns (last saved epoch, epoch records, stopped)."""
        cfg, emit = self.cfg, self.emit
        start = {"event": "start", "epoch": self.start, "epochs": cfg.epochs}
        start.update(batches=self.batches, train_clips=self.n, val_clips=self.n_val)
        emit({**start, "device": str(self.device), "parameters": count_parameters(self.model)})
        if self.start > cfg.epochs:
            note = f"already trained {self.start - 1} of {cfg.epochs} epochs"
            emit({"event": "note", "message": note})
        history: list[dict[str, Any]] = []
        last, stopped = self.start - 1, False
        for epoch in range(self.start, cfg.epochs + 1):
            t0 = time.perf_counter()
            done = self.train_epoch(epoch)
            if done is None:
                stopped = True
                note = f"stopped; the checkpoint of epoch {last} is kept in {self.out}"
                emit({"event": "stopped", "epoch": last, "message": note})
                break
            history.append(self.finish_epoch(epoch, *done, t0))
            last = epoch
            emit(history[-1])
        if last > 0 and not self.latents_current():
            self.write_latents()
        return last, history, stopped

    def latents_current(self) -> bool:
        """Whether latents.npz is there and no older than model.pt: a run killed (or out of
        space) between the two leaves the previous epoch's latents behind."""
        latents, weights = self.out / ck.LATENTS_FILE, self.out / ck.WEIGHTS_FILE
        if not latents.is_file():
            return False
        return not weights.is_file() or latents.stat().st_mtime_ns >= weights.stat().st_mtime_ns
