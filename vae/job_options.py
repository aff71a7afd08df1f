"""What a training job is asked for: ``JobOptions`` (the ``python -m vae train`` options),
the defaults training fills in for those left out, and the options read back from a
checkpoint. ``vae.jobs`` starts jobs with them; ``vae.recipes`` names sets of them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vae import checkpoints as ck
from vae.model import MODEL_SIZES, ModelConfig
from vae.train_config import TrainConfig

# JobOptions fields that are TrainConfig's (the rest shape the model)
TRAIN_OPTIONS = ("epochs", "batch_size", "lr", "beta", "beta_warmup_epochs", "free_bits",
                 "seed", "device", "judge_every", "judge")  # fmt: skip


@dataclass(frozen=True)
class JobOptions:
    """The ``python -m vae train`` options a job passes; None leaves the CLI's default (or, on
    resume, the checkpoint's stored value)."""

    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    beta: float | None = None
    beta_warmup_epochs: float | None = None
    free_bits: float | None = None
    latent_dim: int | None = None
    size: str | None = None
    channels: tuple[int, ...] | None = None
    conditional: bool = False
    seed: int | None = None
    device: str | None = None
    judge_every: int | None = None
    judge: str | None = None

    def check(self) -> None:
        """Raise ValueError for a bad value now, not as a failed run a few seconds later."""
        fields = ("epochs", "batch_size", "lr", "beta", "beta_warmup_epochs", "free_bits",
                  "judge_every", "judge")  # fmt: skip
        given = {k: getattr(self, k) for k in fields if getattr(self, k) is not None}
        TrainConfig(**given)
        if self.latent_dim is not None and self.latent_dim < 1:
            raise ValueError(f"latent_dim={self.latent_dim} must be at least 1, e.g. 16")
        if self.channels is not None and (not self.channels or min(self.channels) < 1):
            raise ValueError(f"channels={self.channels} must be positive numbers, e.g. 16,32,64")

    def resolved(self) -> JobOptions:
        """Every option left to the CLI's default filled in with that default (TrainConfig's
        and ModelConfig's own), so a form shows what training will really use; channels
        that are a named size become that size."""
        train = TrainConfig()
        values = {k: getattr(train, k) for k in TRAIN_OPTIONS if getattr(self, k) is None}
        if self.latent_dim is None:
            values["latent_dim"] = ModelConfig.latent_dim  # the dataclass field's default
        channels = self.channels or (MODEL_SIZES[self.size] if self.size else ModelConfig.channels)
        size = _size_of(tuple(channels))
        default_size = _size_of(ModelConfig.channels)
        return replace(self, **values, size=size or self.size or default_size,
                       channels=None if size else tuple(channels))  # fmt: skip

    def arguments(self) -> list[str]:
        """The options as command-line arguments."""
        args: list[str] = []
        for name in ("epochs", "batch_size", "lr", "beta", "beta_warmup_epochs", "free_bits",
                     "latent_dim", "size", "seed", "device", "judge_every"):  # fmt: skip
            value = getattr(self, name)
            if value is not None:
                args += [f"--{name.replace('_', '-')}", str(value)]
        if self.judge is not None and self.judge_every:  # the child runs from another folder
            args += ["--judge", str(Path(self.judge).absolute())]
        if self.channels is not None:
            args += ["--channels", ",".join(str(int(c)) for c in self.channels)]
        if self.conditional:
            args.append("--conditional")
        return args


def _size_of(channels: tuple[int, ...]) -> str | None:
    """The MODEL_SIZES name of these encoder channels, or None when they are no named size."""
    return next((n for n, c in MODEL_SIZES.items() if tuple(c) == tuple(channels)), None)


def stored_options(out: str | Path) -> dict[str, Any] | None:
    """JobOptions values from the checkpoint's config.json, or None without a checkpoint."""
    out = Path(out)
    if not ck.has_checkpoint(out):
        return None
    try:
        config = ck.read_config(out)
    except (OSError, ValueError):
        return None
    train, model = config.get("train_config", {}), config.get("model_config", {})
    values = {k: train[k] for k in TRAIN_OPTIONS if train.get(k) is not None}
    values.update({k: model[k] for k in ("channels", "latent_dim") if model.get(k) is not None})
    values["conditional"] = bool(model.get("n_labels"))
    return values
