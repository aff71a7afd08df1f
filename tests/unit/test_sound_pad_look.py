"""The sound pad looks like the page around it (issue 24 item 8): its spectrogram is drawn
with the server's colour map, and Streamlit's theme becomes its CSS variables. The pad's
colours.js runs under node (tests/js/colours_node.js); the browser side is in
tests/e2e/test_browser_sound_pad.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from plotly.colors import sample_colorscale, unlabel_rgb

from tests.noderun import NODE, run_node
from ui import figures
from vae.audio.features import FeatureConfig

pytestmark = pytest.mark.skipif(NODE is None, reason="no node here (apt-get install nodejs)")


def _run(job: dict, tmp_path: Path) -> dict:
    return run_node("colours_node.js", job, tmp_path)


def test_the_pads_colour_table_is_the_servers_spectrogram_scale(tmp_path):
    cfg = FeatureConfig(sample_rate=8000, clip_samples=4096, n_fft=256, hop_length=128)
    fig = figures.spectrograms([("a", np.zeros((128, 33)))], cfg)
    stops = [list(s) for s in fig.layout.coloraxis.colorscale]  # what the server draws with
    assert stops == [list(s) for s in figures.LEVELS]  # and what the pad is sent
    got = _run({"stops": stops, "size": 256, "colours": [], "theme": {}}, tmp_path)
    table = np.array(got["table"]).reshape(256, 3)
    for i in (0, 1, 31, 64, 100, 127, 128, 180, 200, 254, 255):
        want = unlabel_rgb(sample_colorscale(stops, [i / 255])[0])  # plotly's own sampling
        np.testing.assert_allclose(table[i], want, atol=0.51, err_msg=f"entry {i}")
    # Magma's ends: near-black silence, pale yellow full scale (the old pad drew Plasma)
    assert table[0].tolist() == [0, 0, 4] and table[255].tolist() == [252, 253, 191]


def test_colours_parse_and_the_theme_becomes_css_variables(tmp_path):
    theme = {
        "primaryColor": "#1f8a70",
        "backgroundColor": "#0e1117",
        "secondaryBackgroundColor": "#262730",
        "textColor": "#fafafa",
        "font": '"Source Sans", sans-serif',
        "base": "dark",
    }
    got = _run(
        {
            "stops": [[0, "#000"], [1, "rgb(255, 128, 0)"]],
            "size": 3,
            "colours": ["#1f8a70", "#abc", "rgba(1, 2, 3, 0.5)"],
            "theme": theme,
        },
        tmp_path,
    )
    assert got["table"] == [0, 0, 0, 128, 64, 0, 255, 128, 0]
    assert got["parsed"] == [[31, 138, 112], [170, 187, 204], [1, 2, 3]]
    assert got["variables"] == {
        "--primary": "#1f8a70",
        "--background": "#0e1117",
        "--secondary-background": "#262730",
        "--text": "#fafafa",
        "--font": '"Source Sans", sans-serif',
    }
