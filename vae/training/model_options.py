"""The model options of a fresh run: :class:`ModelOptions`, described once (help, label,
range) for ``python -m vae train``'s model flags, ``vae.jobs.options.JobOptions`` and the Train
page's model widgets, as :class:`vae.training.train_config.TrainConfig` describes training.

A resumed run keeps its checkpoint's model, so these matter only when a run starts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from vae.model.conv_vae import DECODER_KINDS, MODEL_SIZES, ModelConfig
from vae.options import option, options_of


@dataclass(frozen=True)
class ModelOptions:
    """The model a fresh run builds; None (False) leaves ModelConfig's default.

    Attributes:
        latent_dim: size of the latent code.
        size: a ``MODEL_SIZES`` name: the encoder channels per stage.
        channels: the encoder channels per stage themselves; overrides ``size``.
        conditional: condition the model on the clips' labels.
        decoder: how each decoder stage upsamples, one of ``DECODER_KINDS``.
        res_blocks: residual blocks after each decoder stage.
    """

    # fmt: off
    latent_dim: int | None = option(
        None, help="size of the latent code (default 16)", label="Latent dimensions", min=1,
        rule="at least 1, e.g. 16", max=512, advanced=False,
        tip="Size of the code each clip is squeezed into.")
    size: str | None = option(
        None, help="model size (default small)", label="Model size",
        choices=tuple(MODEL_SIZES), advanced=False,
        tip="Channels per encoder stage: bigger learns more, slower.")
    channels: tuple[int, ...] | None = option(
        None, help="encoder channels per stage, e.g. 16,32,64,128", label="Channels (advanced)",
        advanced=False, tip="e.g. 8,16: encoder channels per stage; overrides the size.")
    decoder: str | None = option(
        None, help="decoder upsampling (default transpose)", label="Decoder upsampling",
        choices=DECODER_KINDS,
        tip="transpose: transposed convolutions; upsample: nearest-neighbour and a "
            "convolution (no checkerboard smearing harmonics into bands).")
    res_blocks: int | None = option(
        None, help="residual blocks per decoder stage (default 0)", label="Residual blocks",
        min=0, max=8, rule="0 or more",
        tip="Residual blocks after each decoder stage: capacity where the detail is drawn.")
    conditional: bool = option(
        False, help="condition on the clip labels", label="Conditional on the labels",
        advanced=False,
        tip="Give the model each clip's label, so that you can ask it for one (say a 7).")
    # fmt: on

    def check(self) -> None:
        """Raise ValueError for a bad value now, not when the model is built."""
        for name, described in MODEL_OPTIONS.items():
            problem = described.problem(name, getattr(self, name))
            if problem:
                raise ValueError(problem)
        if self.channels is not None and (not self.channels or min(self.channels) < 1):
            raise ValueError(f"channels={self.channels} must be positive numbers, e.g. 16,32,64")

    def overrides(self) -> dict[str, Any]:
        """The ``model_overrides`` of ``vae.training.train.train``: the options given, and
        conditional."""
        given = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        if self.channels is not None:
            given["channels"] = tuple(self.channels)
        return given


MODEL_OPTIONS = options_of(ModelOptions)
"""ModelOptions field -> its Option, in field order."""

MODEL_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(ModelConfig) if f.name in MODEL_OPTIONS
}
"""What training uses for a model option left out (ModelConfig's own defaults)."""


def parse_channels(text: str) -> tuple[int, ...]:
    """``"8,16"`` -> ``(8, 16)``; ValueError naming the text otherwise."""
    try:
        return tuple(int(c) for c in text.split(","))
    except ValueError:
        raise ValueError(f"Channels {text!r}: write numbers like 8,16,32") from None
