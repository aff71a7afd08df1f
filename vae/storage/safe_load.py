"""``torch.load`` of a file that may be hostile or cut short, refused in one line.

Checkpoints, stage 2's state and any other weights file from disk go through
:func:`guarded_torch_load`: the size is checked before a byte is read, a torn zip and any
pickled object other than tensors and plain values are refused naming the file.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch


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
