"""The VAE loss's terms by name (:class:`Losses`), and the settings that weigh them
(:class:`LossSettings`).

``Losses`` is what :func:`vae.model.conv_vae.vae_loss` returns (scalar tensors), what the
training loop sums over batches and ranks and averages (floats), and what metrics.jsonl
holds: ``loss``, ``recon``, ``kl`` in "step" lines, ``train_<name>`` and ``val_<name>`` in
"epoch" lines, one panel each in the Train page's loss chart. A new term is one field here
(its chart title and axis in the field's metadata) and its value in ``vae_loss``; the loop,
the metrics lines and the chart follow by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

V = TypeVar("V")
W = TypeVar("W")


def term(title: str, log: bool = False, unit: str = "") -> Any:
    """A :class:`Losses` field: its chart panel's ``title``, drawn on a log axis (a term
    that falls by orders of magnitude) or a linear one labelled ``unit``."""
    return dataclasses.field(metadata={"title": title, "log": log, "unit": unit})


@dataclass(frozen=True)
class Losses(Generic[V]):
    """The terms of the negative ELBO, one value each (a scalar tensor, or a float once summed
    or averaged).

    Attributes:
        loss: the objective trained on: recon + beta * KL (floored per dim with free bits).
        recon: the reconstruction term, per clip.
        kl: KL(q(z|x) || N(0, I)) summed over latent dims, per clip (the true value, not
            the floored one).
    """

    loss: V = term("total", log=True)
    recon: V = term("reconstruction", log=True)
    kl: V = term("KL", unit="nats")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The terms' names, in field order (the order of the metrics lines' keys)."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def described(cls) -> dict[str, dict[str, Any]]:
        """Name -> how its chart panel draws it (``title``, ``log``, ``unit``)."""
        return {f.name: dict(f.metadata) for f in dataclasses.fields(cls)}

    @classmethod
    def of(cls, values: Iterable[W]) -> Losses[W]:
        """Losses from values in field order (a vector summed over ranks, say)."""
        values = list(values)
        if len(values) != len(cls.names()):
            raise ValueError(f"{len(values)} values for the {len(cls.names())} loss terms")
        return cls(**dict(zip(cls.names(), values, strict=True)))

    @classmethod
    def zero(cls) -> Losses[float]:
        """Every term 0.0: where sums start."""
        return cls.of([0.0] * len(cls.names()))

    def values(self) -> tuple[V, ...]:
        """The values in field order."""
        return tuple(getattr(self, name) for name in self.names())

    def as_dict(self, prefix: str = "") -> dict[str, V]:
        """``prefix + name`` -> value, in field order: a metrics line's keys."""
        return {prefix + name: getattr(self, name) for name in self.names()}

    def per(self, n: float) -> Losses[float]:
        """Each term divided by ``n``: sums over ``n`` clips to means per clip."""
        return type(self).of(v / n for v in self.values())  # type: ignore[operator]

    def plus(self, other: Losses[Any]) -> Losses[Any]:
        """Term-by-term sums of these and ``other``."""
        return type(self).of(a + b for a, b in zip(self.values(), other.values(), strict=True))


@dataclass(frozen=True)
class LossSettings:
    """How :func:`vae.model.conv_vae.vae_loss` measures and weighs the terms; the loop makes
    it from its ``TrainConfig`` (beta changes with the warm-up: ``dataclasses.replace``).

    Attributes:
        beta: the KL term's weight.
        free_bits: KL floor per latent dim in nats (0 = off).
        likelihood: the per-bin reconstruction term: "gaussian" (sum of squared errors) or
            "laplace" (sum of absolute errors).
        recon_loss: "likelihood" (the per-bin term) or "multiscale" (the spectral distance
            of :mod:`vae.model.spectral_loss`).
        top_db: the features' dB range, which "multiscale" reads to undo the dB mapping.
    """

    beta: float = 1.0
    free_bits: float = 0.0
    likelihood: str = "gaussian"
    recon_loss: str = "likelihood"
    top_db: float = 80.0
