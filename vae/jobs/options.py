"""What a job is asked for: ``JobOptions`` (the ``python -m vae train`` options), the
defaults training fills in for those left out, and the options read back from a checkpoint;
``SharpenOptions`` the same for stage 2 (``python -m vae sharpen``). ``vae.jobs.runner`` starts jobs
with them (each says its command in ``COMMAND``); ``vae.jobs.recipes`` names sets of JobOptions.

JobOptions is made from ``TrainConfig``'s and ``ModelOptions``' fields and SharpenOptions from
``SharpenConfig``'s, so a new option is a job option (and a command-line argument) without
being written here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path
from typing import Any

from vae.model import checkpoints as ck
from vae.model.conv_vae import MODEL_SIZES
from vae.options import flag
from vae.training.model_options import MODEL_DEFAULTS, MODEL_OPTIONS, ModelOptions
from vae.training.sharpen_config import OPTIONS as SHARPEN_DESCRIBED
from vae.training.sharpen_config import SharpenConfig
from vae.training.train_config import OPTIONS, TrainConfig

TRAIN_OPTIONS = tuple(OPTIONS)  # JobOptions fields that are TrainConfig's (the rest: the model)
SHARPEN_OPTIONS = tuple(SHARPEN_DESCRIBED)  # SharpenOptions fields: SharpenConfig's


class _JobOptionsMethods:
    """The methods of :data:`JobOptions` (its fields come from the configs)."""

    COMMAND = "train"  # the ``python -m vae`` command a job with these options runs

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


def _optional(field: dataclasses.Field) -> tuple[str, Any, dataclasses.Field]:
    """A JobOptions field for a config field: None (not given) unless it is a switch."""
    default = False if field.default is False else None
    kind = field.type if default is False else f"{field.type} | None"
    return field.name, kind, dataclasses.field(default=default, metadata=field.metadata)


JobOptions = dataclasses.make_dataclass(
    "JobOptions",
    [_optional(f) for f in (*dataclasses.fields(TrainConfig), *dataclasses.fields(ModelOptions))],
    bases=(_JobOptionsMethods,),
    frozen=True,
    kw_only=True,
)
JobOptions.__module__ = __name__  # pickled and shown as vae.jobs.options.JobOptions
JobOptions.__doc__ = """The ``python -m vae train`` options a job passes: a field for each
``TrainConfig`` and ``ModelOptions`` field; None leaves the CLI's default (or, on resume, the
checkpoint's stored value)."""


class _SharpenOptionsMethods:
    """The methods of :data:`SharpenOptions` (its fields come from ``SharpenConfig``)."""

    COMMAND = "sharpen"

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


SharpenOptions = dataclasses.make_dataclass(
    "SharpenOptions",
    [_optional(f) for f in dataclasses.fields(SharpenConfig)],
    bases=(_SharpenOptionsMethods,),
    frozen=True,
    kw_only=True,
)
SharpenOptions.__module__ = __name__
SharpenOptions.__doc__ = """The ``python -m vae sharpen`` options a job passes: a field for
each ``SharpenConfig`` field; None leaves the CLI's default (or, on resume, the stage's
stored value in sharpen.json)."""


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
