"""One training run, epoch by epoch: batches, validation, then a metrics line, the checkpoint
and the latents after each epoch.

:func:`vae.training.train.train` prepares the run (lock, resume, configs) and hands it to a
:class:`Trainer`; nothing here knows about command lines or the app.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from vae.data.batches import FeatureFile, FeatureRows
from vae.data.dataset import FEATURES_FILE, SpectrogramSet
from vae.harness import never, run_epochs
from vae.model import checkpoints as ck
from vae.model.conv_vae import ConvVAE, ModelConfig, count_parameters, vae_loss
from vae.model.losses import Losses, LossSettings
from vae.progress import OnEvent, ignore_event
from vae.training import distributed as dist
from vae.training import run_checkpoint
from vae.training.train_config import TrainConfig

if TYPE_CHECKING:  # imported in Trainer._open_judging, only by runs that judge
    from vae.training.judge_in_loop import Judging

# Clips per no-grad forward pass (validation, latents). Profiled on FSDD (small model, 2
# cores): 256 took 2.8 s to encode 2,700 clips, 32 took 1.0 s; the activations of a large
# batch fall out of the CPU caches.
EVAL_BATCH = 32
# Clips to train or evaluate on: tensors in memory, or rows of features.npy read from disk
# a chunk at a time.
TrainingClips = torch.Tensor | FeatureRows


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on a GPU; nothing for fp32 (and on the CPU, where train() refuses bf16)."""
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def noise_seed(seed: int, epoch: int) -> int:
    """Seed of an epoch's reparameterisation noise: a function of (seed, epoch) alone, so
    every rank draws the same and a resumed run repeats an uninterrupted one."""
    return int(np.random.SeedSequence([seed, epoch, 1]).generate_state(1)[0])


def loss_settings(cfg: TrainConfig, top_db: float, beta: float | None = None) -> LossSettings:
    """The loss settings of a run: ``cfg``'s, at KL weight ``beta`` (default ``cfg.beta``),
    with the features' ``top_db``."""
    return LossSettings(
        beta=cfg.beta if beta is None else beta, free_bits=cfg.free_bits,
        likelihood=cfg.likelihood, recon_loss=cfg.recon_loss, top_db=top_db,
    )  # fmt: skip


def loss_sums(losses: Losses[torch.Tensor], k: int) -> Losses[float]:
    """A batch's mean losses (scalar tensors) times its ``k`` clips, as float64 numbers (one
    copy to the cpu for all the terms)."""
    values = torch.stack([v.detach() for v in losses.values()]).double().cpu() * k
    return type(losses).of(values.tolist())


@torch.no_grad()
def evaluate(
    model: ConvVAE,
    x: TrainingClips,
    y: torch.Tensor | None,
    settings: LossSettings,
    device: torch.device,
    precision: str = "fp32",
) -> tuple[Losses[float], torch.Tensor]:
    """Mean per-clip losses over clips ``x`` (n, bins, frames) with labels ``y`` (n,) or None,
    in eval mode (z = mu), and the posterior means (n, D) on the cpu."""
    model.eval()
    sums, means = Losses.zero(), []
    for i in range(0, len(x), EVAL_BATCH):
        xb = x[i : i + EVAL_BATCH].to(device)
        yb = y[i : i + EVAL_BATCH].to(device) if y is not None else None
        with autocast(device, precision):
            recon, mu, logvar = model(xb, yb)
        out = vae_loss(recon.float(), xb, mu.float(), logvar.float(), settings)
        sums = sums.plus(loss_sums(out, len(xb)))
        means.append(mu.float().cpu())
    n = max(len(x), 1)
    return sums.per(n), torch.cat(means) if means else torch.zeros(0, model.config.latent_dim)


@torch.no_grad()
def encode_means(
    model: ConvVAE,
    x: TrainingClips,
    y: torch.Tensor | None,
    device: torch.device,
    precision: str = "fp32",
) -> torch.Tensor:
    """Posterior means (n, D) on the cpu of clips ``x`` (n, bins, frames); encoder only."""
    model.eval()
    means = [torch.zeros(0, model.config.latent_dim)]
    for i in range(0, len(x), EVAL_BATCH):
        yb = y[i : i + EVAL_BATCH].to(device) if y is not None else None
        with autocast(device, precision):
            mu = model.encode(x[i : i + EVAL_BATCH].to(device), yb)[0]
        means.append(mu.float().cpu())
    return torch.cat(means)


@dataclass(frozen=True)
class StepTally:
    """What one all-reduce a step sums over the ranks, so that all of them stop or raise at
    the same batch.

    Attributes:
        sums: the loss terms summed over the clips of the ranks' shares.
        stopping: how many ranks were asked to stop.
        non_finite: how many ranks saw a NaN or infinite loss.
    """

    sums: Losses[float]
    stopping: float = 0.0
    non_finite: float = 0.0

    @classmethod
    def of(cls, sums: Losses[float], stop: bool) -> StepTally:
        """This rank's tally: its share's sums, whether it was asked to stop."""
        finite = all(map(math.isfinite, sums.values()))
        return cls(sums, stopping=float(stop), non_finite=float(not finite))

    def over_ranks(self) -> StepTally:
        """The tallies of every rank summed (this one on one process)."""
        total = dist.sum_over_ranks([*self.sums.values(), self.stopping, self.non_finite])
        terms = type(self.sums)
        n = len(terms.names())
        return StepTally(terms.of(total[:n]), stopping=total[n], non_finite=total[n + 1])


@dataclass(frozen=True)
class TrainerSetup:
    """Everything a :class:`Trainer` starts from, decided by :func:`vae.training.train.train`.

    Attributes:
        ds: the dataset; its train and val splits are read from disk a batch at a time.
        out: the checkpoint folder the run keeps current.
        label_names: the names of the labels a conditional model is conditioned on.
        device: this rank's device.
        emit: receives the run's events (rank 0's; the others' are dropped).
        stop: polled every batch; True stops the run, keeping the last finished epoch.
        resume: the model.pt dict of the checkpoint to continue (weights, optimizer), or
            None for a fresh model seeded with ``cfg.seed``.
        world: this process's place among the ranks (one process by default).
    """

    ds: SpectrogramSet
    out: Path
    cfg: TrainConfig
    model_config: ModelConfig
    label_names: list[str]
    device: torch.device
    emit: OnEvent = ignore_event
    stop: Callable[[], bool] = never
    resume: dict[str, Any] | None = None
    world: dist.World = dist.World()


def build_model(setup: TrainerSetup) -> tuple[ConvVAE, torch.optim.Optimizer, int]:
    """The model on ``setup.device``, its optimizer and the first epoch to train: fresh
    (seeded with ``cfg.seed``, epoch 1) or the checkpoint's ``setup.resume`` continued."""
    cfg = setup.cfg
    torch.manual_seed(cfg.seed)
    model = ConvVAE(setup.model_config).to(setup.device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if setup.resume is None:
        return model, opt, 1
    # The checkpoint's "rng" entry (older versions drew noise from it) is unused.
    model.load_state_dict(setup.resume["model"])
    opt.load_state_dict(setup.resume["optimizer"])
    for group in opt.param_groups:  # a resumed run may change them
        group["lr"], group["weight_decay"] = cfg.lr, cfg.weight_decay
    return model, opt, int(setup.resume["epoch"]) + 1


class Trainer:
    """A run in progress: the splits (read from disk a batch at a time), model, optimizer,
    the checkpoint folder it keeps.

    Under torchrun every rank builds one; each trains on its share of every global batch
    (``cfg.batch_size`` clips), and rank 0 alone writes metrics, checkpoints and latents.
    """

    def __init__(self, setup: TrainerSetup) -> None:
        self.world, self.stop = setup.world, setup.stop
        self.ds, self.out, self.cfg, self.device = setup.ds, setup.out, setup.cfg, setup.device
        self.model_config, self.label_names = setup.model_config, setup.label_names
        self.emit = setup.emit if self.world.is_main else ignore_event
        ds, cfg = self.ds, self.cfg
        self.model, self.opt, self.start = build_model(setup)
        # The same weights on every rank; DDP averages the gradients in backward().
        self.net: torch.nn.Module = self.model
        if self.world.active:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        self.features = FeatureFile(Path(ds.root) / FEATURES_FILE)
        labels = torch.from_numpy(ds.label_indices)
        self.parts: dict[str, tuple[FeatureRows, torch.Tensor]] = {}
        for split in ("train", "val"):
            rows = ds.split_indices(split)  # (n,) dataset rows
            self.parts[split] = (FeatureRows(self.features, rows), labels[rows])
        self.n, self.n_val = len(self.parts["train"][0]), len(self.parts["val"][0])
        if self.n == 0:
            raise ValueError(f"{ds.root}: no clips in the train split; preprocess more clips")
        self.batches = math.ceil(self.n / cfg.batch_size)
        self.loss_settings = loss_settings(cfg, ds.config.top_db)  # beta: the warm-up's
        self.rank_clips = 0  # clips this rank trained on in the current epoch
        self.dataset_info = {
            "path": str(Path(ds.root).absolute()),
            "fingerprint": ds.fingerprint,
            "train_clips": self.n,
            "val_clips": self.n_val,
        }
        self.judging: Judging | None = None  # rank 0's, when cfg.judge_every > 0
        if cfg.judge_every:  # a judge that cannot hear this dataset fails here, before epoch 1
            dist.on_main(self.world, self._open_judging)

    def _open_judging(self) -> None:
        # Lazy: the judge and its audio stack add 0.35 s to every run that does not judge.
        from vae.training.judge_in_loop import Judging

        self.judging = Judging.start(self.cfg, self.ds, self.out, self.emit)

    def run(self) -> tuple[int, list[dict[str, Any]], bool]:
        """Train up to ``cfg.epochs``; returns (last saved epoch, epoch records, stopped)."""
        cfg, emit = self.cfg, self.emit
        start = {"event": "start", "epoch": self.start, "epochs": cfg.epochs}
        start.update(batches=self.batches, train_clips=self.n, val_clips=self.n_val)
        if self.world.active:
            start["world_size"] = self.world.size
        emit({**start, "device": str(self.device), "parameters": count_parameters(self.model)})
        if self.start > cfg.epochs:
            note = f"already trained {self.start - 1} of {cfg.epochs} epochs"
            emit({"event": "note", "message": note})
        run = run_epochs(
            self.start,
            cfg.epochs,
            self.train_epoch,
            lambda epoch, done, t0: self.finish_epoch(epoch, *done, t0),
            emit=emit,
            stopped=lambda last: f"stopped; the checkpoint of epoch {last} is kept in {self.out}",
            after=self.stale,
        )
        if run.last > 0 and not dist.on_main(
            self.world, lambda: run_checkpoint.latents_current(self.out)
        ):
            self.write_latents()
        self.features.close()
        return run.last, run.history, run.stopped

    def stale(self, epoch: int) -> str | None:
        """Why the run stops after ``epoch`` (--stop-when-stale), on every rank; or None."""
        if not self.judge(epoch):
            return None
        best = self.out / ck.BEST_DIR
        return f"stopped after epoch {epoch} (--stop-when-stale); {best} holds the best"

    def judge(self, epoch: int) -> bool:
        """Rank 0 scores the checkpoint just saved when ``epoch`` is due (the others wait);
        True on every rank when training should stop (``stop_when_stale``)."""
        if not self.cfg.judged_after(epoch):
            return False
        return dist.on_main(
            self.world, lambda: self.judging is not None and self.judging.after_epoch(epoch)
        )

    def train_epoch(self, epoch: int) -> tuple[Losses[float], float] | None:
        """One pass over the train split; the mean per-clip losses and the last beta, or None
        when stopped (on any rank: all stop at the same batch)."""
        cfg, bs, batches = self.cfg, self.cfg.batch_size, self.batches
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = torch.randperm(self.n, generator=gen).numpy()  # (n,) positions in the split
        noise_gen = torch.Generator().manual_seed(noise_seed(cfg.seed, epoch))
        self.net.train()
        self.rank_clips = 0
        sums, beta = Losses.zero(), cfg.beta
        for b in range(batches):
            # Every rank takes the same global batch and noise, then its own slice of both;
            # sorted, the batch's rows are read from disk in file order.
            batch = np.sort(order[b * bs : (b + 1) * bs])  # (B,)
            noise = torch.randn(len(batch), self.model_config.latent_dim, generator=noise_gen)
            mine = dist.shard(len(batch), self.world.rank, self.world.size)
            beta = cfg.beta_at(epoch, b, batches)
            loss, mine_sums = self._forward(batch[mine], noise[mine], beta, len(batch))
            step = StepTally.of(mine_sums, self.stop()).over_ranks()
            mean = step.sums.per(len(batch))  # of the global batch
            if step.non_finite > 0 or not all(map(math.isfinite, mean.values())):
                raise self._diverged(f"loss became {mean.loss} in batch {b + 1}", epoch)
            if step.stopping > 0:
                return None
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(
                self.model.parameters(), cfg.grad_clip or math.inf
            )
            self.opt.step()
            sums = sums.plus(step.sums)
            self.rank_clips += len(batch[mine])
            self._log_step(epoch, b, mean, beta, float(norm))
        return sums.per(self.n), beta

    def _forward(
        self, rows: np.ndarray, noise: torch.Tensor, beta: float, global_n: int
    ) -> tuple[torch.Tensor, Losses[float]]:
        """This rank's share ``rows`` (k,) of a global batch of ``global_n`` clips, with its
        noise (k, D) -> (the loss to backpropagate, the share's sums of the loss terms).

        DDP averages gradients over ranks, so each loss is weighted by k * W / global_n: the
        result is the gradient of the global batch's mean even when the shares differ.
        """
        x_train, y_train = self.parts["train"]
        k, world = len(rows), self.world.size
        if k:
            x, y = x_train[rows].to(self.device), self._labels(y_train[torch.from_numpy(rows)])
        else:  # an empty share still runs forward and backward: DDP's all-reduce needs it
            x = torch.zeros(1, *x_train.file.row_shape, device=self.device)
            y = self._labels(torch.zeros(1, dtype=torch.long))
            noise = torch.zeros(1, noise.shape[1])
        with autocast(self.device, self.cfg.precision):
            recon, mu, logvar = self.net(x, y, noise.to(self.device))  # (k, bins, frames)...
        settings = replace(self.loss_settings, beta=beta)
        losses = vae_loss(recon.float(), x, mu.float(), logvar.float(), settings)
        loss = losses.loss if world == 1 else losses.loss * (k * world / global_n)
        return loss, loss_sums(losses, k)

    def _log_step(self, epoch: int, b: int, mean: Losses[float], beta: float, norm: float) -> None:
        """A "step" line every ``log_every`` steps (rank 0), a "batch" event every batch."""
        step = (epoch - 1) * self.batches + b + 1
        if self.world.is_main and self.cfg.log_every and step % self.cfg.log_every == 0:
            line = {"event": "step", "epoch": epoch, "batch": b + 1, "batches": self.batches}
            line["step"] = step
            line.update(mean.as_dict(), beta=beta, grad_norm=norm)
            ck.append_jsonl(self.out / ck.METRICS_FILE, line)
        event = {"event": "batch", "epoch": epoch, "batch": b + 1, "batches": self.batches}
        self.emit({**event, "loss": mean.loss})

    def finish_epoch(self, epoch: int, train: Losses[float], beta: float, t0: float) -> dict:
        """Validate, log the epoch, save the checkpoint and the latents; returns the record."""
        val = self.validate(beta)
        if self.n_val and not all(map(math.isfinite, val.values())):
            raise self._diverged(f"validation loss became {val.loss}", epoch)
        record: dict[str, Any] = {"event": "epoch", "epoch": epoch, **train.as_dict("train_")}
        record.update({k: v if self.n_val else None for k, v in val.as_dict("val_").items()})
        record.update(beta=beta, lr=self.opt.param_groups[0]["lr"])
        if self.world.active:  # how the epoch was shared: clips each rank trained on
            counts = torch.zeros(self.world.size, dtype=torch.float64)
            counts[self.world.rank] = self.rank_clips
            record["world_size"] = self.world.size
            record["rank_clips"] = [int(c) for c in dist.all_reduce_sum(counts)]
        record.update(seconds=time.perf_counter() - t0, time=ck.utc_now())
        dist.on_main(self.world, lambda: self._save(record))
        self.write_latents()
        return record

    def validate(self, beta: float) -> Losses[float]:
        """Mean per-clip losses over the val split; each rank evaluates its shard."""
        x_val, y_val = self.parts["val"]
        mine = dist.shard(self.n_val, self.world.rank, self.world.size)
        x = x_val.subset(mine)
        settings = replace(self.loss_settings, beta=beta)
        stats, _ = evaluate(
            self.model, x, self._labels(y_val[mine]), settings, self.device, self.cfg.precision
        )
        sums = type(stats).of(dist.sum_over_ranks(v * len(x) for v in stats.values()))
        return sums.per(max(self.n_val, 1))

    def _save(self, record: dict[str, Any]) -> None:
        """The epoch's metrics line, then model.pt and config.json (rank 0)."""
        run_checkpoint.save_epoch(
            self.out,
            record,
            model=self.model,
            optimizer=self.opt,
            feature_config=self.ds.config,
            model_config=self.model_config,
            train_config=self.cfg,
            label_names=self.label_names,
            dataset_info=self.dataset_info,
            step=record["epoch"] * self.batches,
        )

    def write_latents(self) -> None:
        """latents.npz: posterior means (N, D) of every clip in dataset order; each rank
        encodes its shard of the rows, rank 0 writes the sum."""
        n = len(self.ds)
        mine = dist.shard(n, self.world.rank, self.world.size)
        rows = FeatureRows(self.features, np.arange(n)[mine])
        labels = self._labels(torch.from_numpy(self.ds.label_indices[mine]))
        means = torch.zeros(n, self.model_config.latent_dim)
        means[mine] = encode_means(self.model, rows, labels, self.device, self.cfg.precision)
        dist.all_reduce_sum(means)
        dist.on_main(
            self.world,
            lambda: run_checkpoint.save_latents(
                self.out, means.numpy(), self.ds, self.model_config.conditional, self.cfg.seed
            ),
        )

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
