"""Does the current dataset go with the current checkpoint? One line for each way it does not.

The sidebar lets a person pair any dataset with any checkpoint. Explore, Interpolate and
Evaluate ask the same questions of the pair (issue 24, item 2 and 6), so they ask them here
and say the same thing: is this the very dataset the checkpoint was trained on (its
fingerprint: features, clip ids and order), and can a conditional checkpoint take its labels?
"""

from __future__ import annotations

from collections.abc import Sequence

from ui.safe_text import md
from vae.data.dataset import SpectrogramSet
from vae.synthesis.inference import Synthesiser

PICK_ITS_OWN = "pick the dataset it was trained on in the sidebar"


def trained_on(synth: Synthesiser, ds: SpectrogramSet | None) -> bool:
    """Whether ``ds`` is the very dataset the checkpoint was trained on (its fingerprint)."""
    return ds is not None and ds.fingerprint == synth.checkpoint.dataset_info.get("fingerprint")


def foreign_labels(synth: Synthesiser, ds: SpectrogramSet | None) -> list[str]:
    """The labels of ``ds`` a conditional checkpoint does not know (none for an unconditional
    one, which is given no label): a clip of such a label cannot be encoded as its own."""
    if ds is None or not synth.conditional:
        return []
    return [name for name in ds.label_names if name not in synth.label_names]


def _some(names: Sequence[str], shown: int = 4) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(repr(n) for n in names[:shown]) + more


def label_line(synth: Synthesiser, ds: SpectrogramSet) -> str | None:
    """One line (Markdown, escaped) when a conditional checkpoint cannot take the dataset's
    labels, naming both sets and the way out; None when it can."""
    foreign = foreign_labels(synth, ds)
    if not foreign:
        return None
    return md(
        f"This checkpoint is conditional on the labels {_some(synth.label_names)}; the current "
        f"dataset {ds.root} has others ({_some(foreign)}): {PICK_ITS_OWN}."
    )


def seen_line(synth: Synthesiser, ds: SpectrogramSet, shared: int | None) -> str | None:
    """One line (Markdown, escaped) when figures on ``ds`` may flatter the checkpoint: it is
    not the dataset the checkpoint was trained on, and ``shared`` of its clip ids are among
    the checkpoint's own clips (None: unknown); None when ``ds`` is its own or shares none."""
    if trained_on(synth, ds) or shared == 0:
        return None
    some = "Some" if shared is None else f"{shared} of the {len(ds)}"
    return md(
        f"{ds.root} is not the dataset this checkpoint was trained on: {some} clips of it have "
        "the names of the checkpoint's own clips, so they may be among its training clips and "
        f"flatter every figure; for a fair score, {PICK_ITS_OWN}."
    )
