"""``vae map --method tsne`` keeps its map where Explore keeps it (data/.maps, by the
latents): the second run and the page read the file instead of fitting t-SNE again (issue 26
item 4)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.clirun import ROOT
from vae.model.checkpoints import read_latents
from vae.synthesis.projection import MAP_CACHE, cached_project, map_file


def _map(root, out, ckpt="checkpoints/demo") -> np.ndarray:
    """``python -m vae map`` run in the folder ``root`` (the workspace, where the app would
    run): the CSV's (x, y) per clip, in its order."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "vae", "map", str(ckpt), "--out", str(out)]
    proc = subprocess.run(
        [*cmd, "--method", "tsne"], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith(f"(tsne) to {out}")  # the output is as it was
    rows = out.read_text().splitlines()[1:]
    return np.array([[float(v) for v in r.split(",")[2:]] for r in rows])


@pytest.mark.slow
def test_a_second_tsne_map_reads_the_file_explore_reads(studio_root, tmp_path, monkeypatch):
    root = tmp_path / "studio"
    shutil.copytree(studio_root, root)
    means = read_latents(root / "checkpoints" / "demo")["means"]
    shutil.rmtree(root / MAP_CACHE, ignore_errors=True)  # a page test may have filled it
    file = root / map_file(means, "tsne", 0, MAP_CACHE)  # the page's key: its latents, seed 0
    assert not file.exists()

    first = _map(root, tmp_path / "first.csv")
    kept = file.stat()  # fitted once, kept by the checkpoint's latents
    again = _map(root, tmp_path / "again.csv")
    assert (file.stat().st_ino, file.stat().st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)
    np.testing.assert_array_equal(again, first)
    assert len(list((root / MAP_CACHE).glob("*.npz"))) == 1

    # Explore's loader (cached_project, relative to the working folder) finds the same map.
    monkeypatch.chdir(root)
    page = cached_project(means, "tsne", seed=0)
    np.testing.assert_allclose(page.coords, first, atol=1e-5)  # the CSV keeps 5 decimals
    assert file.stat().st_mtime_ns == kept.st_mtime_ns

    # Run in a folder that is no studio (no data/): the same map, and no folder made there.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    np.testing.assert_array_equal(
        _map(elsewhere, tmp_path / "e.csv", root / "checkpoints/demo"), first
    )
    assert list(elsewhere.iterdir()) == []
