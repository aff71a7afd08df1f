"""End to end in a real browser: a person goes from nothing to a morph.

Starts ``streamlit run app.py`` on 127.0.0.1 in an empty workspace and drives Debian's
chromium through Playwright: generate the demo set, preprocess it, train one epoch and see
the loss chart draw, click a point on the Explore map and get audio, drag α on Interpolate
and get a new spectrogram, move a Synthesise slider. Screenshots of every page land in
``test-artifacts/screenshots/`` (git-ignored; the README's come from here).
Skips, with the reason, where Playwright or /usr/bin/chromium is missing.

``VAE_BROWSER_CLIPS`` (demo clips per class, default 12) and ``VAE_BROWSER_EPOCHS``
(default 1) make a longer run whose screenshots show a trained model (the README's
screenshots: ``VAE_BROWSER_CLIPS=40 VAE_BROWSER_EPOCHS=40
.venv/bin/python -m pytest tests/e2e/test_browser.py``).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator

import pytest

from tests.browser import (
    chromium_tab,
    go,
    key,
    one,
    serve_app,
    settle,
    shot,
)

CLIPS = int(os.environ.get("VAE_BROWSER_CLIPS", "12"))
EPOCHS = int(os.environ.get("VAE_BROWSER_EPOCHS", "1"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``streamlit run app.py`` in an empty workspace, the sound pad switched off (this is
    the server path; tests/e2e/test_browser_sound_pad.py drives the pad); yields its URL."""
    workspace = tmp_path_factory.mktemp("browser-workspace")
    with serve_app(workspace, VAE_SOUND_PAD="0") as url:
        yield url
    shutil.rmtree(workspace, ignore_errors=True)


@pytest.fixture(scope="module")
def page(server: str):
    with chromium_tab(server) as tab:
        yield tab


def redrawn(page, selector: str, before: bytes, timeout: float = 30) -> bool:
    """Whether the element's screenshot differs from ``before`` within ``timeout`` s: on a
    busy machine the rerun a widget move starts may land after the page looked settled."""
    deadline = time.monotonic() + timeout
    while one(page, selector).screenshot() == before:
        if time.monotonic() > deadline:
            return False
        page.wait_for_timeout(500)
        settle(page)
    return True


def test_a_person_goes_from_nothing_to_a_morph(page):
    page.wait_for_selector("h1:has-text('Sound VAE Studio')")
    settle(page)
    shot(page, "home")

    # Dataset: generate the demo set, see the preview, preprocess
    go(page, "Dataset")
    page.get_by_role("tab", name="Generate demo set").click()
    clips = page.locator(f"{key('dataset-demo-n')} input")
    clips.fill(str(CLIPS))
    clips.press("Enter")
    settle(page)
    page.locator(f"{key('dataset-demo')} button").click()
    page.wait_for_selector(f"{key('dataset-spec-fig')} .js-plotly-plot")
    page.wait_for_selector("[data-testid='stAudio']")
    settle(page)
    page.locator(f"{key('dataset-preprocess')} button").click()
    page.wait_for_selector("text=it is now the current dataset", timeout=120_000)
    settle(page)
    shot(page, "dataset")

    # Train: one epoch (or EPOCHS), and the loss chart draws its first validation point
    go(page, "Train")
    epochs = page.locator(f"{key('train-epochs')} input")
    epochs.fill(str(EPOCHS))
    epochs.press("Enter")
    settle(page)
    page.locator(f"{key('train-start')} button").click()
    chart = page.locator(f"{key('train-loss')} .js-plotly-plot").first
    chart.wait_for(timeout=120_000)
    # the validation trace gets a marker once the epoch is done
    page.wait_for_function(
        """() => [...document.querySelectorAll('.st-key-train-loss .scatterlayer .trace')]
                 .some(t => t.querySelectorAll('.point').length > 0)""",
        timeout=180_000,
    )
    page.wait_for_selector(f"text=Finished {EPOCHS} epoch", timeout=180_000 + 20_000 * EPOCHS)
    settle(page)
    shot(page, "train")

    # Explore: click a point on the map, get the original and its reconstruction
    go(page, "Explore")
    page.wait_for_selector(f"{key('explore-map')} .scatterlayer .point")
    audio_before = page.locator("[data-testid='stAudio']").count()
    point = page.locator(f"{key('explore-map')} .scatterlayer .point").nth(3)
    box = point.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function(
        f"() => document.querySelectorAll(\"[data-testid='stAudio']\").length >= "
        f"{max(2, audio_before + 1)}"
    )
    settle(page)
    shot(page, "explore")

    # Interpolate: drag α and get a new mix spectrogram
    go(page, "Interpolate")
    page.wait_for_selector("text=mix, α = 0.50")
    before = one(page, f"{key('interp-spectrograms')} .js-plotly-plot").screenshot()
    thumb = page.locator(f"{key('interp-alpha')} [data-testid='stSliderThumbValue']").locator("..")
    box = thumb.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + 150, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.st-key-interp-spectrograms text')]"
        ".some(t => t.textContent.startsWith('mix, α = ') && !t.textContent.endsWith('0.50'))"
    )
    settle(page)
    assert redrawn(page, f"{key('interp-spectrograms')} .js-plotly-plot", before)
    shot(page, "interpolate")

    # Synthesise: a slider move redraws the spectrogram
    go(page, "Synthesise")
    before = one(page, f"{key('synth-spectrogram')} .js-plotly-plot").screenshot()
    thumb = page.locator(f"{key('synth-dir-0')} input[type='range']")
    thumb.focus()
    for _ in range(20):
        thumb.press("ArrowRight")
    settle(page)
    assert redrawn(page, f"{key('synth-spectrogram')} .js-plotly-plot", before)
    shot(page, "synthesise")


def _picked(tab) -> str:
    """The heading of the clip picked on the Explore map ("<id> — <label>...")."""
    return tab.locator("h3", has_text="—").first.inner_text()


def test_two_browser_sessions_keep_their_own_map_pick(page, server):
    """A second person (another browser context: its own cookies, its own session) picks
    a different clip on the same server; neither sees the other's pick."""
    from playwright.sync_api import Error as PlaywrightError

    go(page, "Explore")
    mine = _picked(page)
    context = page.context.browser.new_context(viewport={"width": 1500, "height": 1300})
    try:
        other = context.new_page()
        other.set_default_timeout(60_000)
        other.goto(server)
        settle(other)
        go(other, "Explore")
        other.wait_for_selector(f"{key('explore-map')} .scatterlayer .point")
        points = other.locator(f"{key('explore-map')} .scatterlayer .point")
        # Points may overlap: try from the last one until a clip other than the first
        # person's is picked (they clicked point 3).
        for n in [i for i in reversed(range(points.count())) if i != 3]:
            box = points.nth(n).bounding_box()
            other.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            try:
                other.wait_for_function(
                    "mine => [...document.querySelectorAll('h3')].some("
                    "h => h.innerText.includes('—') && h.innerText !== mine)",
                    arg=mine,
                    timeout=15_000,
                )
                break
            except PlaywrightError:
                continue
        settle(other)
        theirs = _picked(other)
        assert theirs != mine
        shot(other, "explore-second-session")
    finally:
        context.close()
    go(page, "Synthesise")
    go(page, "Explore")
    assert _picked(page) == mine  # the first person's pick is still theirs
