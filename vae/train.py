"""The training loop shared by the CLI and the app: loss, beta warm-up, validation, metrics,
stop and resume.

One call to :func:`train` trains a ConvVAE on a preprocessed dataset and keeps a checkpoint
folder up to date after every epoch: a line in metrics.jsonl, then model.pt, config.json and
latents.npz (each written atomically). A kill at any moment loses at most the epoch in
progress; ``resume=True`` continues from the last finished one. Everything random is seeded:
the shuffle order is a function of (seed, epoch) and the sampling noise comes from the global
torch RNG whose state is saved in model.pt, so a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vae import checkpoints as ck
from vae.dataset import SpectrogramSet, load_dataset, load_split_tensor
from vae.model import MODEL_SIZES, ConvVAE, ModelConfig, count_parameters, vae_loss

Progress = Callable[[dict[str, Any]], None]
OVERRIDE_KEYS = ("latent_dim", "channels", "size", "conditional", "label_dim")
EVAL_BATCH = 256


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainConfig:
    """How to train; stored in every checkpoint's config.json.

    Attributes:
        epochs: total epochs (a resumed run continues up to this number).
        batch_size, lr, weight_decay: AdamW settings.
        beta: final KL weight; it rises linearly from 0 over ``beta_warmup_epochs`` (a
            function of epoch and batch, so a resumed run picks it up where it was).
        free_bits: KL floor per latent dim in nats (0 = off), against posterior collapse.
        grad_clip: max gradient norm (0 = no clipping).
        seed: seeds initialisation, shuffling and sampling noise.
        device: "auto" (cuda if available, else cpu), "cpu", "cuda" or "cuda:N".
        log_every: write a "step" line to metrics.jsonl every this many steps (0 = never).
        threads: CPU threads for torch (0 = every core this process may use).
    """

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    beta: float = 1.0
    beta_warmup_epochs: float = 5.0
    free_bits: float = 0.0
    weight_decay: float = 0.0
    grad_clip: float = 1000.0
    seed: int = 0
    device: str = "auto"
    log_every: int = 10
    threads: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs={self.epochs} must be at least 1"),
            (self.batch_size >= 1, f"batch_size={self.batch_size} must be at least 1"),
            (self.lr > 0, f"lr={self.lr} must be positive, e.g. 1e-3"),
            (self.beta >= 0, f"beta={self.beta} must be 0 or more"),
            (self.beta_warmup_epochs >= 0, f"beta_warmup_epochs={self.beta_warmup_epochs} < 0"),
            (self.free_bits >= 0, f"free_bits={self.free_bits} must be 0 or more"),
            (self.weight_decay >= 0, f"weight_decay={self.weight_decay} must be 0 or more"),
            (self.grad_clip >= 0, f"grad_clip={self.grad_clip} must be 0 (off) or more"),
            (self.log_every >= 0, f"log_every={self.log_every} must be 0 (off) or more"),
            (self.threads >= 0, f"threads={self.threads} must be 0 (all cores) or more"),
            (
                self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"),
                f"device={self.device!r} must be auto, cpu, cuda or cuda:N",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict`, ignoring fields this version does not know."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def beta_at(self, epoch: int, batch: int, batches: int) -> float:
        """KL weight at ``batch`` (0-based) of ``epoch`` (1-based) with ``batches`` per epoch."""
        if self.beta_warmup_epochs <= 0:
            return self.beta
        done = (epoch - 1) + (batch + 1) / max(batches, 1)  # epochs of training so far
        return self.beta * min(1.0, done / self.beta_warmup_epochs)


@dataclass
class TrainResult:
    """What a :func:`train` call did: the checkpoint's epoch, this run's epoch records."""

    out_dir: Path
    epoch: int
    history: list[dict[str, Any]]
    stopped: bool
    seconds: float


# ------------------------------------------------------------------------------ helpers


def resolve_device(name: str) -> torch.device:
    """ "auto" -> cuda when available, else cpu; ValueError for an unavailable device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but no CUDA GPU is available; use --device cpu")
    return torch.device(name)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def build_model_config(
    ds: SpectrogramSet, overrides: dict[str, Any] | None
) -> tuple[ModelConfig, list[str]]:
    """Model config for a fresh run on ``ds``, and the label names it conditions on."""
    o = dict(overrides or {})
    unknown = sorted(set(o) - set(OVERRIDE_KEYS))
    if unknown:
        raise ValueError(f"unknown model overrides {unknown}; choose from {OVERRIDE_KEYS}")
    channels = o.get("channels")
    if channels is None and o.get("size") is not None:
        if o["size"] not in MODEL_SIZES:
            raise ValueError(f"size={o['size']!r}; choose one of {sorted(MODEL_SIZES)}")
        channels = MODEL_SIZES[o["size"]]
    n_labels = 0
    if o.get("conditional"):
        if not ds.label_names:
            raise ValueError(
                f"{ds.root}: no labels, so no conditional model; preprocess with "
                "--labels folder|fsdd or train without --conditional"
            )
        unlabelled = int((ds.label_indices < 0).sum())
        if unlabelled:
            raise ValueError(
                f"{ds.root}: {unlabelled} clips have no label; a conditional model needs "
                "every clip labelled: fix the labels or train without --conditional"
            )
        n_labels = len(ds.label_names)
    kwargs = {k: o[k] for k in ("latent_dim", "label_dim") if o.get(k) is not None}
    if channels is not None:
        kwargs["channels"] = tuple(int(c) for c in channels)
    cfg = ModelConfig(*ds.config.shape, n_labels=n_labels, **kwargs)
    return cfg, list(ds.label_names)


@torch.no_grad()
def _evaluate(
    model: ConvVAE,
    x: torch.Tensor,
    y: torch.Tensor | None,
    beta: float,
    free_bits: float,
    device: torch.device,
) -> tuple[dict[str, float], torch.Tensor]:
    """Mean per-clip losses over (x, y) in eval mode, and the posterior means (n, D) on cpu."""
    model.eval()
    sums, means = torch.zeros(3, dtype=torch.float64), []
    for i in range(0, len(x), EVAL_BATCH):
        xb = x[i : i + EVAL_BATCH].to(device)
        yb = y[i : i + EVAL_BATCH].to(device) if y is not None else None
        recon, mu, logvar = model(xb, yb)
        out = vae_loss(recon, xb, mu, logvar, beta, free_bits)
        sums += torch.stack(
            [out[k].detach().double().cpu() for k in ("loss", "recon", "kl")]
        ) * len(xb)
        means.append(mu.float().cpu())
    n = max(len(x), 1)
    stats = {k: float(v) / n for k, v in zip(("loss", "recon", "kl"), sums, strict=True)}
    return stats, torch.cat(means) if means else torch.zeros(0, model.config.latent_dim)


def _prepare_out(out: Path, resume: bool, emit: Progress) -> bool:
    """Check ``out`` against ``resume``; True when a checkpoint is there to resume."""
    if ck.has_checkpoint(out):
        if not resume:
            raise ValueError(
                f"{out}: already holds a checkpoint; pass --resume to continue or choose "
                "another --out"
            )
        return True
    ours = {ck.LOCK_FILE, ck.METRICS_FILE, ck.LATENTS_FILE}
    foreign = [p.name for p in out.iterdir() if p.name not in ours]
    if foreign:
        raise ValueError(
            f"{out}: exists and is not a checkpoint folder (holds {', '.join(sorted(foreign)[:3])})"
            "; choose another --out"
        )
    if resume:
        emit({"event": "note", "message": f"{out} holds no checkpoint yet: starting fresh"})
    for name in (ck.METRICS_FILE, ck.LATENTS_FILE):  # leftovers of a run killed in epoch 1
        (out / name).unlink(missing_ok=True)
    return False


def _tidy(out: Path) -> None:
    """Remove temp files of writers killed mid-write (we hold the lock: none is alive)."""
    for tmp in out.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def train(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    train_config: TrainConfig | None = None,
    model_overrides: dict[str, Any] | None = None,
    resume: bool = False,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train a ConvVAE on the dataset ``data_dir``, keeping the checkpoint ``out_dir`` current.

    Args:
        train_config: how to train; None means defaults, or on resume the stored config.
            On resume a given config is used as is (e.g. more ``epochs``).
        model_overrides: latent_dim, channels, size (a MODEL_SIZES name), conditional,
            label_dim; ignored on resume (the checkpoint fixes the model).
        resume: continue the checkpoint in ``out_dir`` (fresh start when there is none).
        progress: called with small dicts: {"event": "start" | "batch" | "epoch" | "note" |
            "stopped" | "done", ...}.
        should_stop: polled between batches; True stops, keeping the last finished epoch.
            SIGTERM does the same when training runs in the main thread.
    Raises:
        ValueError: bad arguments, a busy or foreign ``out_dir``, a dataset that cannot train.
        CheckpointError: resuming a checkpoint made from other data or features.
        TrainingDiverged: the loss became NaN or infinite.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    emit: Progress = progress or (lambda event: None)
    asked = should_stop or (lambda: False)
    terminated: list[int] = []

    def stop() -> bool:
        return bool(terminated) or asked()

    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: is a file, not a checkpoint folder; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    with ck.FolderLock(out):
        _tidy(out)
        found = _prepare_out(out, resume, emit)
        ds = load_dataset(Path(data_dir))
        ckpt = ck.load_checkpoint(out) if found else None
        cfg = train_config or (TrainConfig.from_dict(ckpt.train_config) if ckpt else TrainConfig())
        device = resolve_device(cfg.device)
        old_threads = torch.get_num_threads()
        if device.type == "cpu":
            torch.set_num_threads(cfg.threads or _cpu_count())
        # SIGTERM (the app's Stop, `kill`) stops at the next batch like should_stop does.
        main = threading.current_thread() is threading.main_thread()
        old_handler = (
            signal.signal(signal.SIGTERM, lambda *_: terminated.append(1)) if main else None
        )
        try:
            run = _Run(ds, out, ckpt, cfg, model_overrides, device, emit, stop)
            return run.run(started)
        finally:
            torch.set_num_threads(old_threads)
            if main:
                signal.signal(signal.SIGTERM, old_handler)


def _ignored_overrides(cfg: ModelConfig, overrides: dict[str, Any] | None) -> list[str]:
    """["name=value", ...] of the overrides that differ from a resumed model's config."""
    o = dict(overrides or {})
    if o.get("size") in MODEL_SIZES and o.get("channels") is None:
        o["channels"] = MODEL_SIZES[o.pop("size")]
    have = {"latent_dim": cfg.latent_dim, "channels": cfg.channels, "label_dim": cfg.label_dim}
    have["conditional"] = cfg.conditional
    return [
        f"{k}={v}"
        for k, v in o.items()
        if k in have and v is not None and (tuple(v) if k == "channels" else v) != have[k]
    ]


def _restore(
    ckpt: ck.Checkpoint | None,
    ds: SpectrogramSet,
    out: Path,
    overrides: dict | None,
    emit: Progress,
) -> tuple[ModelConfig, list[str]]:
    """Model config and label names of the run; for a resume, checks the data and tidies."""
    if ckpt is None:
        return build_model_config(ds, overrides)
    if ckpt.dataset_info.get("fingerprint") != ds.fingerprint:
        raise ck.CheckpointError(
            f"checkpoint {out} was trained on dataset {ckpt.dataset_info.get('path')} "
            f"(fingerprint {ckpt.dataset_info.get('fingerprint')}); {ds.root} is "
            f"{ds.fingerprint}: resume with the same dataset or train a new model"
        )
    ck.check_compatible(ckpt, ds.config, f"dataset {ds.root}")
    ignored = _ignored_overrides(ckpt.model_config, overrides)
    if ignored:
        note = f"resuming keeps the checkpoint's model; ignoring {', '.join(ignored)}"
        emit({"event": "note", "message": note})
    dropped = ck.trim_metrics(out, ckpt.epoch)
    if dropped:
        note = f"dropped {dropped} metrics lines after epoch {ckpt.epoch} (an unfinished run)"
        emit({"event": "note", "message": note})
    return ckpt.model_config, ckpt.label_names


class _Run:
    """State of one training run: data in memory, model, optimizer, where to write."""

    def __init__(self, ds, out, ckpt, cfg, overrides, device, emit, stop) -> None:
        self.ds, self.out, self.cfg, self.device, self.emit, self.stop = (
            ds, out, cfg, device, emit, stop
        )  # fmt: skip
        torch.manual_seed(cfg.seed)
        self.model_config, self.label_names = _restore(ckpt, ds, out, overrides, emit)
        self.model = ConvVAE(self.model_config).to(device)
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.start = 1
        if ckpt is not None:
            self.start = ckpt.epoch + 1
            self.model.load_state_dict(ckpt.state["model"])
            self.opt.load_state_dict(ckpt.state["optimizer"])
            for group in self.opt.param_groups:  # a resumed run may change them
                group["lr"], group["weight_decay"] = cfg.lr, cfg.weight_decay
            torch.set_rng_state(ckpt.state["rng"].cpu())
            if device.type == "cuda" and "cuda_rng" in ckpt.state:
                torch.cuda.set_rng_state(ckpt.state["cuda_rng"].cpu(), device)
        # Whole splits in memory: (n, bins, frames) float32 and (n,) label indices.
        self.parts = {s: load_split_tensor(ds, s) for s in ("train", "val")}
        self.n = len(self.parts["train"][0])
        if self.n == 0:
            raise ValueError(f"{ds.root}: no clips in the train split; preprocess more clips")
        self.batches = math.ceil(self.n / cfg.batch_size)
        self.n_val = len(self.parts["val"][0])
        self.dataset_info = {
            "path": str(Path(ds.root).absolute()),
            "fingerprint": ds.fingerprint,
            "train_clips": self.n,
            "val_clips": self.n_val,
        }

    def _labels(self, y: torch.Tensor) -> torch.Tensor | None:
        return y.to(self.device) if self.model_config.conditional else None

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
            values = torch.stack([losses[k].detach() for k in ("loss", "recon", "kl")])
            values = values.double().cpu()  # (3,) loss, recon, kl
            if not torch.isfinite(values).all():
                raise TrainingDiverged(
                    f"loss became {values[0].item()} at epoch {epoch}, batch {b + 1}; the "
                    f"checkpoint of epoch {epoch - 1} in {self.out} is kept: resume with a "
                    f"lower --lr (now {cfg.lr}) or a longer beta warm-up"
                )
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
                line = {"event": "step", "epoch": epoch, "batch": b + 1, "step": step}
                line.update(loss=loss, recon=recon_v, kl=kl, beta=beta, grad_norm=float(norm))
                ck.append_jsonl(self.out / ck.METRICS_FILE, line)
            self.emit(
                {"event": "batch", "epoch": epoch, "batch": b + 1, "batches": batches, "loss": loss}
            )
        return (sums / self.n).tolist(), beta

    def finish_epoch(self, epoch: int, train_stats: list[float], beta: float, t0: float) -> dict:
        """Validate, log the epoch, save the checkpoint and the latents; returns the record."""
        x_val, y_val = self.parts["val"]
        val, _ = _evaluate(
            self.model, x_val, self._labels(y_val), beta, self.cfg.free_bits, self.device
        )
        if self.n_val and not all(math.isfinite(v) for v in val.values()):
            raise TrainingDiverged(
                f"validation loss became {val['loss']} at epoch {epoch}; the checkpoint of "
                f"epoch {epoch - 1} in {self.out} is kept"
            )
        record = {"event": "epoch", "epoch": epoch}
        for i, key in enumerate(("loss", "recon", "kl")):
            record[f"train_{key}"] = train_stats[i]
        for key in ("loss", "recon", "kl"):
            record[f"val_{key}"] = val[key] if self.n_val else None
        record.update(beta=beta, lr=self.opt.param_groups[0]["lr"])
        record.update(seconds=time.perf_counter() - t0, time=_now())
        ck.append_jsonl(self.out / ck.METRICS_FILE, record)  # then model.pt, then config.json
        extra = {"step": epoch * self.batches, "rng": torch.get_rng_state()}
        if self.device.type == "cuda":
            extra["cuda_rng"] = torch.cuda.get_rng_state(self.device)
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
        self.write_latents()
        return record

    def write_latents(self) -> None:
        """latents.npz: posterior means of every clip in dataset order."""
        means = np.zeros((len(self.ds), self.model_config.latent_dim), np.float32)
        for split, (x, y) in self.parts.items():
            _, mu = _evaluate(self.model, x, self._labels(y), 0.0, 0.0, self.device)
            means[self.ds.split_indices(split)] = mu.numpy()  # (n_split, D)
        ck.write_latents(self.out, means, self.ds.label_indices, self.ds.ids)

    def run(self, started: float) -> TrainResult:
        cfg, emit = self.cfg, self.emit
        emit(
            {
                "event": "start",
                "epoch": self.start,
                "epochs": cfg.epochs,
                "batches": self.batches,
                "train_clips": self.n,
                "val_clips": self.n_val,
                "device": str(self.device),
                "parameters": count_parameters(self.model),
            }
        )
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
        if last > 0 and not (self.out / ck.LATENTS_FILE).is_file():
            self.write_latents()  # a run killed between config.json and latents.npz
        seconds = time.perf_counter() - started
        emit({"event": "done", "epoch": last, "stopped": stopped, "seconds": seconds})
        return TrainResult(self.out, last, history, stopped, seconds)
