"""Lazy row reading (vae.data.batches): the rows asked for, in the order asked, without the file
piling up in the process's resident memory."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vae.data.batches import FeatureFile, FeatureRows


@pytest.fixture
def npy(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rows = np.random.default_rng(0).random((50, 6, 5)).astype(np.float16)
    np.save(tmp_path / "features.npy", rows)
    return tmp_path / "features.npy", rows


def test_reads_the_rows_asked_for_in_their_order(npy: tuple[Path, np.ndarray]) -> None:
    path, rows = npy
    f = FeatureFile(path)
    assert len(f) == 50 and f.row_shape == (6, 5)
    for ask in ([3], [0, 1, 2], [49, 3, 7, 8, 9, 0], [5, 5, 4], list(range(50))[::-1]):
        got = f.read(np.array(ask))
        assert got.dtype == torch.float32
        np.testing.assert_array_equal(got.numpy(), rows[ask].astype(np.float32))
    assert f.read(np.array([], dtype=np.int64)).shape == (0, 6, 5)
    with pytest.raises(IndexError, match="outside 0..49"):
        f.read(np.array([50]))
    view = FeatureRows(f, np.array([10, 20, 30, 40]))
    assert len(view) == 4 and len(view.subset(slice(1, 3))) == 2
    np.testing.assert_array_equal(view[1:3].numpy(), rows[[20, 30]].astype(np.float32))
    f.close()


def test_refuses_a_file_that_is_not_an_array(tmp_path: Path) -> None:
    (tmp_path / "features.npy").write_bytes(b"not numpy at all")
    with pytest.raises(ValueError, match="unreadable rows.*re-run preprocess"):
        FeatureFile(tmp_path / "features.npy")


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_reading_every_row_keeps_resident_memory_flat(tmp_path: Path) -> None:
    """128 MiB of rows read in batches: RSS grows by the allocator's slack, then stays flat
    (a memory map that touched every row would count all 128 MiB)."""
    path = tmp_path / "features.npy"
    block = np.full((256, 128, 128), 0.5, dtype=np.float16)  # 8 MiB
    with path.open("wb") as out:
        np.lib.format.write_array_header_1_0(
            out, {"descr": "<f2", "fortran_order": False, "shape": (16 * 256, 128, 128)}
        )
        for _ in range(16):
            out.write(block.tobytes())
    f = FeatureFile(path)
    order = np.random.default_rng(0).permutation(len(f))
    f.read(order[:64])  # first-use allocations out of the measurement
    rss, total = [_rss_mib()], 0.0
    for i in range(0, len(f), 64):
        total += float(f.read(np.sort(order[i : i + 64]))[:, 0, 0].sum())
        if i + 64 in (len(f) // 2, len(f)):
            rss.append(_rss_mib())
    assert total == pytest.approx(0.5 * len(f))
    # Measured: +44 MiB of allocator slack after the first batches, then flat.
    assert rss[2] - rss[0] < 64 and rss[2] - rss[1] < 8, rss
