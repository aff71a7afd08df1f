"""Loads shared across reruns and sessions: models and memory-mapped arrays load once.

``st.cache_resource`` hands every session the same object (``cache_data`` would copy big
arrays on every hit). Each loader is keyed on the file's modification time, so a checkpoint
that training rewrites is reloaded on the next rerun.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st
import torch

from vae.checkpoints import CONFIG_FILE, LATENTS_FILE, read_latents
from vae.dataset import SpectrogramSet, load_dataset
from vae.inference import Synthesiser

# One clip's decode + Griffin-Lim is small work: extra threads only spin under contention.
torch.set_num_threads(1)


def _stamp(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


@st.cache_resource(max_entries=4, show_spinner="Loading the checkpoint...")
def _synthesiser(path: str, stamp: float) -> Synthesiser:
    return Synthesiser.load(path)


def synthesiser(path: str | Path) -> Synthesiser:
    """The checkpoint at ``path`` ready to encode, decode and sample (CPU, eval mode)."""
    path = Path(path)
    return _synthesiser(str(path), _stamp(path / CONFIG_FILE))


@st.cache_resource(max_entries=4, show_spinner="Opening the dataset...")
def _dataset(path: str, stamp: float) -> SpectrogramSet:
    return load_dataset(Path(path))


def dataset(path: str | Path) -> SpectrogramSet:
    """The preprocessed dataset at ``path``, memory-mapped."""
    path = Path(path)
    return _dataset(str(path), _stamp(path / "config.json"))


@st.cache_resource(max_entries=4)
def _latents(path: str, stamp: float) -> dict[str, np.ndarray]:
    return read_latents(path)


def latents(path: str | Path) -> dict[str, np.ndarray]:
    """The checkpoint's latents.npz: means (N, D), labels (N,), ids (N,)."""
    path = Path(path)
    return _latents(str(path), _stamp(path / LATENTS_FILE))
