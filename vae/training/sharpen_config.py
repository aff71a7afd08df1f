"""How the adversarial stage trains: :class:`SharpenConfig`, stored in ``sharpen.json``.

Described as ``TrainConfig`` is (each field's :class:`~vae.options.Option`), so
``python -m vae sharpen``'s flags and the Train page's widgets are built from it; it has no
imports of the training code, so the CLI reads it without loading the stage.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from vae.options import check_options, known_fields, option, options_of


@dataclass(frozen=True)
class SharpenConfig:
    """How the adversarial stage trains; stored in ``sharpen.json``.

    Attributes:
        epochs: stage epochs in all (a resumed stage continues up to this number).
        batch_size: real clips per step; the critic also sees as many reconstructions, and
            half as many prior samples and interpolation points each.
        lr, critic_lr: Adam steps of the decoder and the critic (betas 0.5, 0.9).
        spectral_weight, feature_weight, adversarial_weight: the decoder's loss terms.
        shift_frames: random time shift (frames, either way) of every clip the critic sees.
        seed: seeds the critic, the order, the draws and the shifts.
        judge: a judge folder; it scores every stage epoch and keeps the best in ``best/``.
    """

    # fmt: off
    epochs: int = option(
        8, help="stage-2 epochs in all, resume counting on (default 8)", label="Sharpen epochs",
        min=1, max=10_000, advanced=False,
        tip="Passes over the data against the critic; the encoder stays as it is.")
    batch_size: int = option(
        32, help="real clips per step (default 32)", label="Batch size", min=2, max=1024)
    lr: float = option(
        1e-4, help="decoder learning rate (default 1e-4)", label="Decoder learning rate",
        positive=True, low=1e-6, max=1e-2, step=1e-5, format="%g")
    critic_lr: float = option(
        4e-4, help="critic learning rate (default 4e-4)", label="Critic learning rate",
        positive=True, low=1e-6, max=1e-2, step=1e-5, format="%g")
    spectral_weight: float = option(
        500.0, help="weight of the multi-resolution spectral term (default 500)",
        label="Spectral weight", min=0, max=100_000.0, step=10.0,
        tip="The term is about 0.004 per bin for a stage-1 model, so 500 makes it about 2: "
            "twice the adversarial term, as HiFi-GAN's x45 on its mel L1 does.")
    feature_weight: float = option(
        2.0, help="weight of feature matching (default 2)", label="Feature matching weight",
        min=0, max=100.0, step=0.5)
    adversarial_weight: float = option(
        1.0, help="weight of the critic's verdict (default 1)", label="Adversarial weight",
        min=0, max=100.0, step=0.1)
    shift_frames: int = option(
        8, help="random time shift of what the critic sees, frames (default 8)",
        label="Critic time shift (frames)", min=0, max=256)
    seed: int = option(0, help="seed (default 0)", label="Seed", min=0, max=2**31 - 1)
    judge: str | None = option(
        None, help="judge folder: scores every stage epoch, keeps the best in CKPT/best",
        label="Judge", advanced=False)
    device: str = option("auto", help="auto: a GPU if any", label="Device", open=True,
                         choices=("auto", "cpu", "cuda"))
    threads: int = option(0, help="CPU threads (default: all cores)", label="CPU threads",
                          min=0, max=1024)
    # fmt: on

    def __post_init__(self) -> None:
        check_options(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SharpenConfig:
        """Rebuild from :meth:`to_dict`, ignoring fields this version does not know."""
        return cls(**known_fields(cls, data))


OPTIONS = options_of(SharpenConfig)
"""SharpenConfig field -> its Option, in field order."""
