"""How to train: :class:`TrainConfig` (stored in every checkpoint's config.json), and the
device and precision checks made from it before any rank trains.

It has no imports of the training code, so the loop, the judge in the loop, the job launcher
and the CLI can all read it without importing each other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

PRECISIONS = ("fp32", "bf16")
LIKELIHOODS = ("gaussian", "laplace")


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
        likelihood: the reconstruction term: "gaussian" (sum of squared errors) or
            "laplace" (sum of absolute errors, which averages detail away less).
        judge_every: score the checkpoint with the judge every this many epochs and at the
            last one, keeping the best in ``best/`` (0 = off; see :mod:`vae.judging`).
        judge: the judge folder (``python -m vae judge``); needed when judge_every > 0.
        judge_patience: scorings without improvement before saying that stopping loses nothing.
        stop_when_stale: stop training then, instead of only saying so.
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
    precision: str = "fp32"
    likelihood: str = "gaussian"
    judge_every: int = 0
    judge: str | None = None
    judge_patience: int = 3
    stop_when_stale: bool = False

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
            (self.precision in PRECISIONS, f"precision={self.precision!r}: one of {PRECISIONS}"),
            (
                self.likelihood in LIKELIHOODS,
                f"likelihood={self.likelihood!r}: one of {LIKELIHOODS}",
            ),
            (
                self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"),
                f"device={self.device!r} must be auto, cpu, cuda or cuda:N",
            ),
            (self.judge_every >= 0, f"judge_every={self.judge_every} must be 0 (off) or more"),
            (
                self.judge_every == 0 or bool(self.judge),
                f"judge_every={self.judge_every} needs a judge folder: pass --judge DIR "
                "(made by `python -m vae judge DATA --out DIR`)",
            ),
            (self.judge_patience >= 1, f"judge_patience={self.judge_patience} must be 1 or more"),
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
