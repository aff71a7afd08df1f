"""Rows of a dataset's ``features.npy`` read on demand, so training holds a batch, not a split.

A memory map would do the reading, but every page it touches stays mapped and counts in the
process's resident memory: one epoch over ``np.load(mmap_mode="r")`` puts the whole file in
RSS. Here rows are copied with ``os.preadv`` straight into fresh arrays; the file's pages stay
in the kernel's page cache (shared, dropped under pressure) and out of the process, so a
corpus larger than memory trains in bounded memory. Rows come in runs of consecutive indices
(one call per run), which makes reading a sorted batch or a whole split in order cheap.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch


class FeatureFile:
    """A ``.npy`` of rows (N, *row_shape) open for reading rows by index.

    Raises:
        ValueError: not a plain C-ordered ``.npy`` file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = open(self.path, "rb", buffering=0)  # noqa: SIM115 (closed in close())
        try:
            version = np.lib.format.read_magic(self._file)
            read_header = {
                (1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
            }.get(version)
            if read_header is None:
                raise ValueError(f"npy format version {version} is not supported")
            shape, fortran, dtype = read_header(self._file)
            if fortran or dtype.hasobject or len(shape) < 1:
                raise ValueError("expected a C-ordered array of numbers")
        except ValueError as err:
            self._file.close()
            raise ValueError(f"{self.path}: unreadable rows ({err}); re-run preprocess") from None
        self.dtype, self.shape = dtype, tuple(shape)
        self.row_shape = self.shape[1:]
        self.row_bytes = dtype.itemsize * int(np.prod(self.row_shape, dtype=np.int64))
        self.data_start = self._file.tell()

    def __len__(self) -> int:
        return self.shape[0]

    def close(self) -> None:
        self._file.close()

    def read(self, rows: np.ndarray) -> torch.Tensor:
        """Rows ``rows`` (k,) in the order given -> float32 tensor (k, *row_shape)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"{self.path}: rows outside 0..{len(self) - 1}")
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        raw = np.empty((len(rows), *self.row_shape), dtype=self.dtype)  # in file order
        # A new run starts wherever the next row is not the one after.
        cuts = np.flatnonzero(np.diff(ordered) != 1) + 1
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(rows)], strict=True):
            if b > a:
                self._read_into(raw[a:b], self.data_start + int(ordered[a]) * self.row_bytes)
        # torch converts float16 more than ten times faster than numpy's astype.
        data = torch.from_numpy(raw).float()
        if np.array_equal(order, np.arange(len(rows))):
            return data
        out = torch.empty_like(data)
        out[torch.from_numpy(order)] = data  # back to the order asked for
        return out

    def _read_into(self, block: np.ndarray, offset: int) -> None:
        view = memoryview(block).cast("B")
        while view:
            if hasattr(os, "preadv"):
                done = os.preadv(self._file.fileno(), [view], offset)
            else:  # no positional reads (Windows): seek, then read
                self._file.seek(offset)
                done = self._file.readinto(view) or 0
            if done == 0:
                raise ValueError(f"{self.path}: file ends before row data; re-run preprocess")
            view, offset = view[done:], offset + done


class FeatureRows:
    """Chosen rows of a :class:`FeatureFile`, read when indexed.

    ``len(rows)`` is their count; ``rows[key]`` (a slice or an index array into them) reads
    those rows -> float32 tensor (k, *row_shape); :meth:`subset` narrows without reading.
    """

    def __init__(self, file: FeatureFile, rows: np.ndarray) -> None:
        self.file, self.rows = file, np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: slice | np.ndarray) -> torch.Tensor:
        return self.file.read(self.rows[key])

    def subset(self, key: slice | np.ndarray) -> FeatureRows:
        return FeatureRows(self.file, self.rows[key])
