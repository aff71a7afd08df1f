"""Weights files that may be hostile or cut short, read and loaded or refused in one line.

Checkpoints, stage 2's state and any other weights file from disk go through
:func:`guarded_torch_load`: the size is checked before a byte is read, a torn zip and any
pickled object other than tensors and plain values are refused naming the file.
:func:`load_state_into` puts what was read into a network (finite tensors that fit it, or
one line naming the file); :func:`load_weights` does both for a plain state-dict file, the
judge's and the vocoder's.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vae.storage import limits


def guarded_torch_load(
    file: Path,
    device: str | torch.device,
    max_bytes: int,
    fix: str,
    error: type[ValueError] = ValueError,
) -> Any:
    """``torch.load(file, weights_only=True)`` of a file that may be hostile or cut short:
    its size checked before a byte is read, a torn zip or a pickled object refused in one
    line naming ``file`` (and ``fix``: what to do about it), as ``error``."""
    corrupt = f"{file}: truncated or corrupt (%s); {fix}"
    size = file.stat().st_size
    if size > max_bytes:  # checked before torch reads a byte of it
        raise error(f"{file}: {size:,} bytes, more than the {max_bytes:,} it may take; {fix}")
    if not zipfile.is_zipfile(file):  # torch.save writes a zip archive; a cut one is not
        raise error(corrupt % "not a complete zip archive")
    try:
        return torch.load(file, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only refuses any object that is not a tensor or a plain value: unpickling it
        # could run code. Keep torch's one line that names the object.
        why = [ln.strip() for ln in str(err).splitlines() if "WeightsUnpickler" in ln]
        raise error(
            f"{file}: refused, it holds objects other than tensors and plain values "
            f"({(why or ['weights_only'])[0][:160]}); only load checkpoints written by this tool"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        raise error(corrupt % f"{type(err).__name__}: {str(err)[:120]}") from None


def load_state_into(
    module: nn.Module,
    state: Any,
    file: Path,
    fits: str,
    fix: str,
    error: type[ValueError] = ValueError,
) -> None:
    """``module.load_state_dict(state)`` of weights read from ``file``, refused in one line
    naming ``file`` as ``error``: not a dict of tensors, a floating tensor holding NaN or inf
    (weights that decode to silence), or names and shapes that do not fit ``fits`` (what the
    module was built from, e.g. "the model in config.json"); ``fix`` says what to do."""
    if not isinstance(state, dict):
        raise error(f"{file}: not a sound-vae-studio weights file; {fix}")
    limits.check_finite(state, file, error)
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError, KeyError, ValueError) as err:
        first = str(err).strip().splitlines()
        raise error(
            f"{file}: weights do not fit {fits} ({' '.join(first[:3])[:300]}); {fix}"
        ) from None


def load_weights(
    module: nn.Module,
    file: Path,
    max_bytes: int,
    fits: str,
    fix: str,
    error: type[ValueError] = ValueError,
) -> None:
    """Read the weights file ``file`` (a state dict, as ``torch.save(module.state_dict())``
    wrote it) into ``module`` on the CPU: :func:`guarded_torch_load` then
    :func:`load_state_into`; a missing, oversized, torn, hostile, non-finite or ill-fitting
    file is one line naming it, as ``error``."""
    if not file.is_file():
        raise error(f"{file}: missing; {fix}")
    state = guarded_torch_load(file, "cpu", max_bytes, fix, error)
    load_state_into(module, state, file, fits, fix, error)
