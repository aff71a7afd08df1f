"""Loads shared across reruns and sessions: models and memory-mapped arrays load once.

``st.cache_resource`` hands every session the same object (``cache_data`` would copy big
arrays on every hit). Each loader is keyed on the file's modification time, so a checkpoint
that training rewrites is reloaded on the next rerun.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import streamlit as st
import torch

from vae.data.dataset import CONFIG_FILE as DATASET_CONFIG
from vae.data.dataset import SpectrogramSet, load_dataset
from vae.model.checkpoints import CONFIG_FILE, LATENTS_FILE, WEIGHTS_FILE, read_latents
from vae.synthesis import inference
from vae.synthesis.inference import Clip, Synthesiser
from vae.synthesis.latent import checkpoint_axes
from vae.synthesis.projection import Projection, project

T = TypeVar("T")

# One clip's decode + Griffin-Lim is small work: extra threads only spin under contention.
torch.set_num_threads(1)


def _stamp(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


@st.cache_resource(max_entries=4, show_spinner="Loading the checkpoint...")
def _synthesiser(path: str, stamp: tuple[float, float]) -> Synthesiser:
    return Synthesiser.load(path)


def synthesiser(path: str | Path) -> Synthesiser:
    """The checkpoint at ``path`` ready to encode, decode and sample (CPU, eval mode)."""
    path = Path(path).resolve()  # absolute: two workspaces in one process never share
    # Both files: a model.pt replaced on its own (by hand, or a hostile copy) is read again.
    return _synthesiser(str(path), (_stamp(path / CONFIG_FILE), _stamp(path / WEIGHTS_FILE)))


# Sounds kept for every session: a few hundred kB each (features, a waveform, a figure's
# data), so 128 of them hold a page's recent moves without growing a long-lived server.
SOUNDS_KEPT = 128


@st.cache_resource(max_entries=SOUNDS_KEPT, show_spinner=False)
def _sound(path: str, stamp: tuple[float, float], what: str, key: tuple, _make: Callable) -> object:
    return _make()


def sound(checkpoint: str | Path, what: str, key: tuple, make: Callable[[], T]) -> T:
    """``make()`` once per checkpoint version, ``what`` and ``key`` (e.g. a code's bytes and
    its label), for every session: a slider or α that comes back to a place heard before,
    or a move of another control, decodes and runs Griffin-Lim again for nothing.

    ``make`` must depend only on the checkpoint and ``key``; what it returns is shared, so it
    should be read-only (``frozen``).
    """
    path = Path(checkpoint).resolve()
    stamp = (_stamp(path / CONFIG_FILE), _stamp(path / WEIGHTS_FILE))
    return _sound(str(path), stamp, what, key, make)  # type: ignore[return-value]


def frozen(*arrays: np.ndarray | torch.Tensor) -> tuple[np.ndarray, ...]:
    """Numpy copies that cannot be written (a cached sound is shared between sessions)."""
    out = []
    for array in arrays:
        array = np.array(array.numpy() if isinstance(array, torch.Tensor) else array)
        array.setflags(write=False)
        out.append(array)
    return tuple(out)


@st.cache_resource(max_entries=4, show_spinner="Opening the dataset...")
def _dataset(path: str, stamp: float) -> SpectrogramSet:
    return load_dataset(Path(path))


def dataset(path: str | Path) -> SpectrogramSet:
    """The preprocessed dataset at ``path``, memory-mapped."""
    path = Path(path).resolve()
    return _dataset(str(path), _stamp(path / DATASET_CONFIG))


@st.cache_resource(max_entries=4)
def _latents(path: str, stamp: float) -> dict[str, np.ndarray]:
    return read_latents(path)  # shapes, counts and NaN checked against the checkpoint's config


def latents(path: str | Path) -> dict[str, np.ndarray]:
    """The checkpoint's latents.npz: means (N, D), labels (N,), ids (N,)."""
    path = Path(path).resolve()
    return _latents(str(path), _stamp(path / LATENTS_FILE))


@st.cache_resource(max_entries=8)
def _directions(path: str, stamp: float, latent_dim: int, k: int) -> tuple[np.ndarray, ...]:
    return checkpoint_axes(path, latent_dim, k)


def directions(path: str | Path, latent_dim: int, k: int) -> tuple[np.ndarray, ...]:
    """(centre (D,), directions (k, D), spread (k,)) of the checkpoint's latent means,
    or of the prior when it has no latents.npz."""
    path = Path(path).resolve()
    if (path / LATENTS_FILE).is_file():
        latents(path)  # checked before its axes are made
    return _directions(str(path), _stamp(path / LATENTS_FILE), latent_dim, k)


@st.cache_resource(max_entries=8, show_spinner=False)
def _projection(path: str, stamp: float, method: str) -> Projection:
    return project(np.asarray(_latents(path, stamp)["means"], np.float32), method, seed=0)


def projection(path: str | Path, method: str = "pca") -> Projection:
    """The 2-D map of the checkpoint's latent means by ``method``: fitted once per
    latents.npz version for every session, not on each move of each one."""
    path = Path(path).resolve()
    return _projection(str(path), _stamp(path / LATENTS_FILE), method)


@st.cache_resource(max_entries=64, show_spinner=False)
def _stored_clip(path: str, stamp: float, clip_id: str) -> Clip:
    """A clip from its stored code: decoded (and Griffin-Lim'd) once for every session."""
    synth, stored = synthesiser(path), _latents(path, stamp)
    ids = [str(i) for i in stored["ids"]]
    if clip_id not in ids:
        raise ValueError(f"{clip_id!r} is not a clip of {path}/{LATENTS_FILE}")
    row = ids.index(clip_id)
    label = int(stored["labels"][row]) if synth.conditional else None
    return synth.clip_from_code(clip_id.replace("/", "_"), stored["means"][row], label)


def clip(
    checkpoint: str | Path, synth: Synthesiser, ds: SpectrogramSet | None, clip_id: str
) -> Clip:
    """A clip by id: from ``ds`` when there is one (its original audio), else decoded from
    the code the checkpoint's latents.npz stores for it (its reconstruction stands in)."""
    if ds is not None:
        return synth.clip_from_dataset(ds, clip_id)
    path = Path(checkpoint).resolve()
    return _stored_clip(str(path), _stamp(path / LATENTS_FILE), clip_id)


def companion_dataset(
    checkpoint: str | Path, synth: Synthesiser, same_clips: bool = False
) -> SpectrogramSet | None:
    """A dataset for this checkpoint, opened through the cache: the current one, else the
    one it was trained on when still on disk, else None
    (``vae.synthesis.inference.companion_dataset``)."""
    from ui.state import current_dataset

    return inference.companion_dataset(synth.checkpoint, current_dataset(), same_clips, dataset)
