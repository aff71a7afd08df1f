"""What a job is asked for: ``JobOptions`` (the ``python -m vae train`` options), the
defaults training fills in for those left out, and the options read back from a checkpoint;
``SharpenOptions`` the same for stage 2 (``python -m vae sharpen``). ``vae.jobs.runner`` starts jobs
with them (each says its command in ``COMMAND``); ``vae.jobs.recipes`` names sets of JobOptions.

Both are written out, a field for each field of ``TrainConfig`` and ``ModelOptions`` (and of
``SharpenConfig``), so that an editor and a type checker see them; a test
(tests/unit/test_options.py) holds them to those configs' fields, names, order and types, so a
new training option that is not added here fails it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from vae.model import checkpoints as ck
from vae.model.conv_vae import MODEL_SIZES
from vae.options import flag
from vae.training.model_options import MODEL_DEFAULTS, MODEL_OPTIONS, ModelOptions
from vae.training.sharpen_config import OPTIONS as SHARPEN_DESCRIBED
from vae.training.sharpen_config import SharpenConfig
from vae.training.train_config import OPTIONS, TrainConfig

TRAIN_OPTIONS = tuple(OPTIONS)  # JobOptions fields that are TrainConfig's (the rest: the model)
SHARPEN_OPTIONS = tuple(SHARPEN_DESCRIBED)  # SharpenOptions fields: SharpenConfig's


@dataclass(frozen=True, kw_only=True)
class JobOptions:
    """The ``python -m vae train`` options a job passes: a field for each ``TrainConfig`` and
    ``ModelOptions`` field (their docstrings say what each means); None leaves the CLI's
    default (or, on resume, the checkpoint's stored value), a switch is False when not given."""

    COMMAND: ClassVar[str] = "train"  # the ``python -m vae`` command a job with these runs

    # TrainConfig's fields
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    beta: float | None = None
    beta_warmup_epochs: float | None = None
    free_bits: float | None = None
    weight_decay: float | None = None
    grad_clip: float | None = None
    seed: int | None = None
    device: str | None = None
    log_every: int | None = None
    threads: int | None = None
    precision: str | None = None
    likelihood: str | None = None
    recon_loss: str | None = None
    judge_every: int | None = None
    judge: str | None = None
    judge_patience: int | None = None
    stop_when_stale: bool = False
    # ModelOptions' fields
    latent_dim: int | None = None
    size: str | None = None
    channels: tuple[int, ...] | None = None
    decoder: str | None = None
    res_blocks: int | None = None
    conditional: bool = False

    def check(self) -> None:
        """Raise ValueError for a bad value now, not as a failed run a few seconds later."""
        given = {k: getattr(self, k) for k in TRAIN_OPTIONS if getattr(self, k) is not None}
        TrainConfig(**given)
        self.model().check()

    def model(self) -> ModelOptions:
        """The model options among these."""
        return ModelOptions(**{k: getattr(self, k) for k in MODEL_OPTIONS})

    def resolved(self) -> JobOptions:
        """Every option left to the CLI's default filled in with that default (TrainConfig's
        and ModelConfig's own), so a form shows what training will really use; channels
        that are a named size become that size."""
        train = TrainConfig()
        values = {k: getattr(train, k) for k in TRAIN_OPTIONS if getattr(self, k) is None}
        for name in ("latent_dim", "decoder", "res_blocks"):
            if getattr(self, name) is None:
                values[name] = MODEL_DEFAULTS[name]
        channels = self.channels or (
            MODEL_SIZES[self.size] if self.size else MODEL_DEFAULTS["channels"]
        )
        size = _size_of(tuple(channels))
        default_size = _size_of(MODEL_DEFAULTS["channels"])
        return replace(self, **values, size=size or self.size or default_size,
                       channels=None if size else tuple(channels))  # fmt: skip

    def arguments(self) -> list[str]:
        """The options as command-line arguments (those given: None and False are not)."""
        args: list[str] = []
        for name in (*TRAIN_OPTIONS, *MODEL_OPTIONS):
            value = getattr(self, name)
            if value is None or value is False:
                continue
            if value is True:
                args.append(flag(name))
            elif name == "judge":  # only with judge_every; the child runs from another folder
                args += [flag(name), str(Path(value).absolute())] if self.judge_every else []
            elif name == "channels":
                args += [flag(name), ",".join(str(int(c)) for c in value)]
            else:
                args += [flag(name), str(value)]
        return args


@dataclass(frozen=True, kw_only=True)
class SharpenOptions:
    """The ``python -m vae sharpen`` options a job passes: a field for each ``SharpenConfig``
    field (its docstring says what each means); None leaves the CLI's default (or, on resume,
    the stage's stored value in sharpen.json)."""

    COMMAND: ClassVar[str] = "sharpen"

    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    critic_lr: float | None = None
    spectral_weight: float | None = None
    feature_weight: float | None = None
    adversarial_weight: float | None = None
    shift_frames: int | None = None
    seed: int | None = None
    judge: str | None = None
    device: str | None = None
    threads: int | None = None

    def given(self) -> dict[str, Any]:
        """The options given (not None), by field name."""
        values = {k: getattr(self, k) for k in SHARPEN_OPTIONS}
        return {k: v for k, v in values.items() if v is not None}

    def check(self) -> None:
        """Raise ValueError for a bad value now, not as a failed stage a few seconds later."""
        SharpenConfig(**self.given())

    def resolved(self) -> SharpenOptions:
        """Every option left to the CLI's default filled in with SharpenConfig's."""
        return replace(self, **{**SharpenConfig().to_dict(), **self.given()})

    def arguments(self) -> list[str]:
        """The options given as command-line arguments; the judge as an absolute path (the
        child runs from another folder)."""
        args: list[str] = []
        for name, value in self.given().items():
            shown = str(Path(value).absolute()) if name == "judge" else str(value)
            args += [flag(name), shown]
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
    stored = ("channels", "latent_dim", "decoder", "res_blocks")
    values.update({k: model[k] for k in stored if model.get(k) is not None})
    values["conditional"] = bool(model.get("n_labels"))
    return values
