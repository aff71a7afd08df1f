"""How to train: :class:`TrainConfig` (stored in every checkpoint's config.json), and the
device and precision checks made from it before any rank trains.

Each field carries its :class:`vae.options.Option` (help, range, choices, label): the one
description that ``python -m vae train``'s flags, ``vae.jobs.options.JobOptions`` and the
Train page's widgets are built from, and that ``__post_init__`` validates with. Adding a
training option means adding one field here (and its test).

It has no imports of the training code, so the loop, the judge in the loop, the job launcher
and the CLI can all read it without importing each other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from vae.options import check_options, known_fields, option, options_of

PRECISIONS = ("fp32", "bf16")
LIKELIHOODS = ("gaussian", "laplace")
RECON_LOSSES = ("likelihood", "multiscale")
DEVICES = ("auto", "cpu", "cuda")  # offered by the CLI and the page; cuda:N and mps pass too
JUDGE_GROUP = "the judge in the loop (scores samples; keeps the best in CKPT/best)"


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
        threads: CPU threads for torch (0 = every core this process may use, shared
            evenly among the processes torchrun starts on this machine).
        precision: "fp32", or "bf16" (autocast on a CUDA GPU that supports it).
        likelihood: the per-bin reconstruction term: "gaussian" (sum of squared errors) or
            "laplace" (sum of absolute errors, which averages detail away less).
        recon_loss: "likelihood" (the per-bin term above) or "multiscale": a
            multi-resolution spectral distance (:mod:`vae.model.spectral_loss`), closer to what
            is heard.
        judge_every: score the checkpoint with the judge every this many epochs and at the
            last one, keeping the best in ``best/`` (0 = off; see
            :mod:`vae.training.judge_in_loop`).
        judge: the judge folder (``python -m vae judge``); needed when judge_every > 0.
        judge_patience: scorings without improvement before saying that stopping loses nothing.
        stop_when_stale: stop training then, instead of only saying so.
    """

    # fmt: off
    epochs: int = option(
        30, help="total epochs, resume counting on (default 30)", label="Epochs", min=1,
        max=100_000, tip="Total passes over the data; Resume trains up to it.", advanced=False)
    batch_size: int = option(
        64, help="clips per step (default 64)", label="Batch size", min=1, max=4096,
        tip="Clips per step: larger is smoother, needs memory.", advanced=False)
    lr: float = option(
        1e-3, help="learning rate (default 0.001)", label="Learning rate", positive=True,
        rule="positive, e.g. 1e-3", low=1e-6, max=1.0, step=1e-4, format="%g",
        tip="AdamW step; lower it if the loss blows up.", advanced=False)
    beta: float = option(
        1.0, help="final weight of the KL term (default 1.0)", label="Beta (KL weight)", min=0,
        rule="0 or more", max=100.0, step=0.1,
        tip="Higher: a smoother latent space, blurrier sound.", advanced=False)
    beta_warmup_epochs: float = option(
        5.0, help="epochs to ramp beta up (default 5)", label="Beta warm-up (epochs)", min=0,
        rule="0 or more", max=1000.0, step=1.0, tip="Beta rises from 0 over these epochs.",
        advanced=False)
    free_bits: float = option(
        0.0, help="KL floor per latent dim, nats (default 0)", label="Free bits (nats)", min=0,
        rule="0 or more", max=10.0, step=0.1,
        tip="KL floor per latent dimension, against collapse.", advanced=False)
    weight_decay: float = option(
        0.0, help="AdamW weight decay (default 0)", label="Weight decay", min=0,
        rule="0 or more", max=1.0, step=1e-4, format="%g",
        tip="AdamW's decoupled weight decay; 0: none.")
    grad_clip: float = option(
        1000.0, help="max gradient norm (default 1000; 0: no clipping)",
        label="Gradient clip (max norm)", min=0, rule="0 (off) or more", max=1e9, step=10.0,
        tip="Gradients longer than this are scaled down to it; 0: no clipping.")
    seed: int = option(
        0, help="seed of initialisation and shuffling (default 0)", label="Seed", low=0,
        max=2**31 - 1,
        tip="Seeds initialisation, shuffling and sampling noise: the same seed, the same run.")
    device: str = option(
        "auto", help="auto: a GPU if any", label="Device", choices=DEVICES, open=True,
        tip="auto: a GPU when there is one.", advanced=False)
    log_every: int = option(
        10, help="write a step line to metrics.jsonl every N steps (default 10; 0: never)",
        label="Log every N steps", min=0, rule="0 (off) or more", max=1_000_000,
        tip="A step line in metrics.jsonl every this many steps; 0: epoch lines only.")
    threads: int = option(
        0, help="CPU threads per process (default: all cores)", label="CPU threads", min=0,
        rule="0 (all cores) or more", max=1024,
        tip="Torch threads per training process; 0: every core, shared among the processes.")
    precision: str = option(
        "fp32", help="bf16: on a GPU (default fp32)", label="Precision", choices=PRECISIONS,
        tip="bf16: autocast on a CUDA GPU that supports it; fp32 elsewhere.")
    likelihood: str = option(
        "gaussian",
        help="reconstruction term: squared (gaussian, default) or absolute (laplace) errors",
        label="Likelihood", choices=LIKELIHOODS,
        tip="gaussian: squared errors; laplace: absolute errors, which blur detail less.")
    recon_loss: str = option(
        "likelihood",
        help="reconstruction loss: the per-bin --likelihood (default) or multiscale: log-"
             "magnitude L1 + spectral convergence at full resolution and pooled 2x, 4x",
        label="Reconstruction loss", choices=RECON_LOSSES,
        tip="likelihood: per bin, as --likelihood says; multiscale: compares spectrograms at "
            "three resolutions, in dB and in linear magnitude (closer to what is heard).")
    judge_every: int = option(
        0, help="score every N epochs and the last (0: off)", label="Judge every N epochs",
        min=0, rule="0 (off) or more", max=100_000, group=JUDGE_GROUP, advanced=False,
        tip="0: off (Resume: as the run was started). The judge scores prior samples and "
            "reconstructions every N epochs and at the last; the best epoch is kept in best/ "
            "inside the checkpoint folder.")
    judge: str | None = option(
        None, help="judge folder, made by `python -m vae judge DATA --out DIR`", label="Judge",
        group=JUDGE_GROUP, advanced=False,
        tip="A classifier of the dataset's labels (`python -m vae judge DATA --out DIR`).")
    judge_patience: int = option(
        3, help="scorings without gain before the note (3)", label="Judge patience", min=1,
        rule="1 or more", max=1000, group=JUDGE_GROUP,
        tip="Scorings without improvement before the page says stopping loses nothing.")
    stop_when_stale: bool = option(
        False, help="stop training once the judge's score has not improved for the patience",
        label="Stop when stale", group=JUDGE_GROUP,
        tip="Stop training then, instead of only saying so.")
    # fmt: on

    def __post_init__(self) -> None:
        check_options(self)
        if not (self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps")):
            raise ValueError(f"device={self.device!r} must be auto, cpu, cuda or cuda:N")
        if self.judge_every and not self.judge:
            raise ValueError(
                f"judge_every={self.judge_every} needs a judge folder: pass --judge DIR "
                "(made by `python -m vae judge DATA --out DIR`)"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict`, ignoring fields this version does not know."""
        return cls(**known_fields(cls, data))

    def judged_after(self, epoch: int) -> bool:
        """Whether the judge scores epoch ``epoch``: every ``judge_every``, and the last."""
        every = self.judge_every
        return every > 0 and (epoch % every == 0 or epoch == self.epochs)

    def beta_at(self, epoch: int, batch: int, batches: int) -> float:
        """KL weight at ``batch`` (0-based) of ``epoch`` (1-based) with ``batches`` per epoch."""
        if self.beta_warmup_epochs <= 0:
            return self.beta
        done = (epoch - 1) + (batch + 1) / max(batches, 1)  # epochs of training so far
        return self.beta * min(1.0, done / self.beta_warmup_epochs)


OPTIONS = options_of(TrainConfig)
"""TrainConfig field -> its :class:`Option`, in field order."""


def resolve_device(name: str) -> torch.device:
    """ "auto" -> cuda when available, else cpu; ValueError for an unavailable device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but no CUDA GPU is available; use --device cpu")
    return torch.device(name)


def check_precision(precision: str, device: torch.device) -> None:
    """bf16 runs under CUDA autocast only; elsewhere it is refused rather than ignored."""
    if precision == "bf16" and not (device.type == "cuda" and torch.cuda.is_bf16_supported()):
        raise ValueError(
            f"precision=bf16 on {device}: bf16 needs a CUDA GPU with bf16 support; "
            "use --precision fp32"
        )
