"""A dataset's ``waveforms.npy``: clips stored as int16, read back as float32 in [-1, 1].

The waveforms are kept only so that originals can be played and evaluated; in float32 they
were two thirds of what preprocessing wrote (2 of 2.8 GB for 30,000 ``seed`` clips), and
writing is what bounds a run. int16 holds a peak-normalised clip to within 1/65534 of full
scale (16-bit audio, as every WAV the app plays). Datasets made before hold float32 and
are read as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SCALE = 32767  # full scale: int16 +-32767 <-> float +-1.0 (the same both ways)
DTYPES = ("int16", "float32")  # what waveforms.npy may hold: now, and before


def to_int16(waves: np.ndarray, peak: float | None = None) -> np.ndarray:
    """Clips (..., samples) float in [-1, 1] -> int16, rounded to the nearest step; with
    ``peak``, each clip is first scaled so its loudest sample is ``peak`` (as
    ``io.peak_normalise``, in the same pass; silence stays silence)."""
    waves = np.asarray(waves, np.float32)
    if peak is None:
        scaled = np.clip(waves, -1.0, 1.0) * np.float32(SCALE)
    else:
        top = np.maximum(waves.max(axis=-1, keepdims=True), -waves.min(axis=-1, keepdims=True))
        scaled = waves * (np.float32(peak * SCALE) / np.maximum(top, np.float32(1e-12)))
    return np.rint(scaled, out=scaled).astype(np.int16)


class Waveforms:
    """Rows of a memory-mapped ``waveforms.npy`` as float32 clips, whatever it stores.

    Indexing converts only the rows asked for (one clip: microseconds), so the array stays
    memory-mapped; ``np.asarray`` of the whole converts all of it. ``shape``, ``dtype``
    (float32), ``len`` and indexing behave as the float32 array of earlier datasets did.
    """

    dtype = np.dtype(np.float32)

    def __init__(self, stored: np.ndarray) -> None:
        self.stored = stored  # (N, clip_samples) int16 or float32, memory-mapped

    @property
    def shape(self) -> tuple[int, ...]:
        return self.stored.shape

    @property
    def ndim(self) -> int:
        return self.stored.ndim

    def __len__(self) -> int:
        return len(self.stored)

    def __getitem__(self, index: Any) -> np.ndarray:
        rows = self.stored[index]
        if self.stored.dtype == np.float32:
            return rows
        return np.multiply(rows, np.float32(1 / SCALE), dtype=np.float32)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype, copy=False)
