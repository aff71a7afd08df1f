"""Explore's t-SNE map is fitted once per checkpoint content and kept on disk (issue 24 item
11: 17.6 s on every visit to the shipped checkpoint's t-SNE, and again after a restart)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import streamlit as st

from tests.apptest import chart_traces, open_page
from vae.model.checkpoints import read_latents
from vae.synthesis.projection import MAP_CACHE, map_file


def _tsne_map() -> np.ndarray:
    """Open Explore in the working folder, switch to t-SNE: the clips' (x, y) by id order."""
    at = open_page("explore")
    at.radio(key="explore-method").set_value("tsne").run()
    assert not at.exception, at.exception
    points = {}
    for t in chart_traces(at, "explore-map"):
        if t["name"] in ("selected", "route") or t.get("customdata") is None:
            continue
        for clip, x, y in zip(t["customdata"], t["x"], t["y"], strict=True):
            points[str(clip)] = (float(x), float(y))
    return np.array([points[k] for k in sorted(points)])


@pytest.mark.slow
def test_a_restarted_server_reads_the_kept_tsne_map_and_a_retrained_checkpoint_refits(
    studio_root, tmp_path, monkeypatch
):
    root = tmp_path / "studio"
    shutil.copytree(studio_root, root)
    monkeypatch.chdir(root)
    means = read_latents(root / "checkpoints" / "demo")["means"]
    file = root / map_file(means, "tsne", 0, MAP_CACHE)
    st.cache_resource.clear()
    first = _tsne_map()
    kept = file.stat()  # fitted once, kept by the checkpoint's latents

    st.cache_resource.clear()  # what a restart forgets
    again = _tsne_map()
    np.testing.assert_array_equal(again, first)
    assert (file.stat().st_ino, file.stat().st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)

    # Another checkpoint content (training rewrote its latents): a new map, fitted for it.
    lat = np.load(root / "checkpoints" / "demo" / "latents.npz")
    moved = {k: lat[k] for k in lat.files} | {"means": lat["means"] + 1.5}
    np.savez(root / "checkpoints" / "demo" / "latents.npz", **moved)
    _tsne_map()
    assert map_file(moved["means"], "tsne", 0, root / MAP_CACHE).is_file()
    assert len(list((root / MAP_CACHE).glob("*.npz"))) == 2
