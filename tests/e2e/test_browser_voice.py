"""End to end in a real browser: your own voice on the map, a morph from it, a route's morph.

Starts ``streamlit run app.py`` on 127.0.0.1 in a workspace holding only the shipped
checkpoint (``checkpoints/fsdd-digits``, copied, no dataset) and drives Debian's chromium
through Playwright with a fake microphone that plays a real spoken digit (conftest's
``recording_wav``: 48 kHz 16-bit mono, as chromium's fake capture wants it). On Explore it
records 1.5 s, sees the recording land on the map and be reconstructed, presses "Morph from
this" and sees Interpolate morph from it; back on Explore it clicks three points of the map
and downloads the route's morph: one WAV of the expected length.
Skips, with the reason, where Playwright, /usr/bin/chromium or the checkpoint is missing.
Slow: run it alone (``.venv/bin/python -m pytest tests/e2e/test_browser_voice.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.browser import (
    SHIPPED,
    chromium_tab,
    go,
    key,
    serve_app,
    settle,
    shot,
    with_shipped_checkpoint,
)
from vae.audio.io import crossfade_concat

if not (SHIPPED / "model.pt").is_file():
    pytest.skip(f"no shipped checkpoint at {SHIPPED}", allow_module_level=True)
MAP = f"{key('explore-map')} .js-plotly-plot"


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory, recording_wav: Path) -> Iterator:
    """A chromium tab on the app in a workspace holding only the shipped checkpoint (no
    dataset), whose microphone plays ``recording_wav`` (granted without a prompt)."""
    workspace = tmp_path_factory.mktemp("voice-workspace")
    with_shipped_checkpoint(workspace)
    fake_mic = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={recording_wav}",
    ]
    with (
        serve_app(workspace, "streamlit-voice.log") as url,
        chromium_tab(url, *fake_mic, permissions=["microphone"]) as tab,
    ):
        yield tab


def _route_points(tab) -> int:
    """Points listed in the page's "Route: 1. ... → 2. ..." caption (0 without one)."""
    text = tab.locator("[data-testid='stCaptionContainer']", has_text="Route: 1.").all_inner_texts()
    return text[0].count("→") + 1 if text else 0


def _extreme_point(tab, which: int) -> tuple[float, float]:
    """Screen centre of the map's leftmost (0), rightmost (1) or highest (2) point, read
    afresh: the plot area shrinks as the legend gains "selected" and "route"."""
    centres = tab.evaluate(
        """sel => [...document.querySelectorAll(sel)].map(p => {
               const r = p.getBoundingClientRect();
               return [r.x + r.width / 2, r.y + r.height / 2];
           })""",
        f"{key('explore-map')} .scatterlayer .trace .point",
    )
    xy = np.array(centres)  # (points, 2)
    x, y = xy[[xy[:, 0].argmin(), xy[:, 0].argmax(), xy[:, 1].argmin()][which]]
    return float(x), float(y)


def test_my_voice_lands_on_the_map_morphs_and_a_route_downloads(page, tmp_path):
    # Explore: record 1.5 s from the (fake) microphone
    go(page, "Explore")
    page.wait_for_selector(f"{MAP} .scatterlayer .point")
    page.locator(f"{key('explore-record')} [aria-label='Record']").click()
    page.wait_for_timeout(1500)
    page.locator(f"{key('explore-record')} [aria-label='Stop recording']").click()
    page.wait_for_selector("h3:has-text('Your recording')", timeout=60_000)
    settle(page)
    legend = page.locator(f"{MAP} .legendtext").all_text_contents()
    assert "yours: recording" in legend  # the star is on the map
    assert page.get_by_text("Reconstruction (decoded posterior mean)").count() >= 1
    assert page.get_by_text("Encoded and reconstructed as label '0'").count() == 1
    shot(page, "explore-voice")

    # "Morph from this": Interpolate takes the recording as A and morphs it into B
    page.locator(f"{key('explore-recording-to-a')} button").click()
    page.wait_for_selector("h1:has-text('Interpolate')")
    page.wait_for_selector("text=Your clip 'recording', sent from the Explore page.")
    page.wait_for_selector(f"{key('interp-spectrograms')} .js-plotly-plot")
    settle(page)
    page.locator(f"{key('interp-morph')} button").click()
    page.wait_for_selector(f"{key('interp-download')} button:has-text('morph-recording-to-')")
    settle(page)
    assert page.locator("[data-testid='stAudio']").count() >= 1  # the morph plays
    shot(page, "interpolate-voice")

    # Explore again: three clicks on the map make a route; download its morph
    go(page, "Explore")
    page.wait_for_selector(f"{MAP} .scatterlayer .point")
    for n in (1, 2, 3):  # far apart, so that each click lands on another clip
        page.mouse.click(*_extreme_point(page, n - 1))
        page.wait_for_function(
            "n => [...document.querySelectorAll(\"[data-testid='stCaptionContainer']\")]"
            ".some(c => c.innerText.startsWith('Route: 1.') && c.innerText.includes(n + '. '))",
            arg=n,
        )
        settle(page)
    assert _route_points(page) == 3
    assert "route" in page.locator(f"{MAP} .legendtext").all_text_contents()
    assert page.locator(f"{MAP} .scatterlayer .js-line").count() >= 1  # the line is drawn
    page.locator(f"{key('explore-route-morph')} button").click()
    button = page.locator(f"{key('explore-route-download')} button")
    button.wait_for(timeout=120_000)
    settle(page)
    shot(page, "explore-route")
    with page.expect_download() as info:
        button.click()
    download = info.value
    assert download.suggested_filename == "route-morph.wav"
    saved = tmp_path / "route-morph.wav"
    download.save_as(saved)
    wave, sr = sf.read(str(saved))
    cfg = json.loads((SHIPPED / "config.json").read_text())["feature_config"]
    clips = (3 - 1) * (4 - 1) + 1  # 3 points, 4 steps a leg (the slider's default)
    fade = int(0.05 * cfg["sample_rate"])  # morph_path's 50 ms crossfades
    expected = len(crossfade_concat([np.zeros(cfg["clip_samples"], np.float32)] * clips, fade))
    assert sr == cfg["sample_rate"] and wave.ndim == 1 and len(wave) == expected
    assert np.abs(wave).max() > 0.1
