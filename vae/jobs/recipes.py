"""Named training recipes: the settings the shipped model was trained with, and a quick one.

The one place these settings are written: ``scripts/reproduce_fsdd_digits.py`` trains the
shipped checkpoint with ``SHIPPED`` and the Train page offers every recipe, so a person can
rebuild the shipped quality from the browser. Options a recipe leaves out (None) are
training's own defaults (``JobOptions.resolved``).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from vae.jobs.options import JobOptions


@dataclass(frozen=True)
class Recipe:
    """A named set of ``python -m vae train`` options, the stage-2 epochs that follow
    (``python -m vae sharpen``; 0: none) and what to expect of it."""

    name: str
    summary: str
    options: JobOptions
    sharpen_epochs: int = 0

    def arguments(self) -> str:
        """The options as one command-line string, e.g. for ``--train-args``."""
        return shlex.join(self.options.arguments())

    def sharpen_arguments(self) -> str:
        """The stage-2 options as one string ("" without a stage 2)."""
        return f"--epochs {self.sharpen_epochs}" if self.sharpen_epochs else ""


# The shipped checkpoints/fsdd-digits: conditional on the digit, beta 3 after a 5-epoch
# warm-up (the README's beta experiments say why), then 12 epochs of stage 2 (the README's
# stage-2 study); its MODEL_CARD.md gives the time of each step.
SHIPPED = Recipe(
    "as the shipped model",
    "Conditional on the labels, beta 3, 16 latent dimensions, 60 epochs, then 12 epochs of "
    "sharpening against a critic: the settings of the shipped spoken-digit model.",
    JobOptions(
        conditional=True, epochs=60, latent_dim=16, beta=3.0, beta_warmup_epochs=5.0, seed=0
    ),
    sharpen_epochs=12,
)
# The same model for 6 epochs, a tenth of the shipped run (27 s an epoch for the spoken
# digits): a few minutes to a first model to hear and explore, blurrier than the shipped one.
QUICK = Recipe(
    "a quick look",
    "The shipped model's settings for 6 epochs (beta warm-up over 2): a first model in a "
    "few minutes on a 2-core CPU, blurrier than the shipped one.",
    JobOptions(conditional=True, epochs=6, latent_dim=16, beta=3.0, beta_warmup_epochs=2.0, seed=0),
)
RECIPES = {recipe.name: recipe for recipe in (SHIPPED, QUICK)}
DEFAULT = SHIPPED  # what the Train page starts from
