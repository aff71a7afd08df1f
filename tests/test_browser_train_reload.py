"""In a real browser: reloading the Train page while a run trains shows that run's own
settings and dataset (issue 15, item 4), not the page's defaults and the newest dataset.

A reload is a new Streamlit session: nothing of the old one survives, only the run's files.
Serves the studio workspace (data/demo, tiny settings: epochs well under a second) with
tests/browser.py; skips where Playwright or chromium is missing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.browser import BROWSER_ARGS, CHROMIUM, go, key, serve_app, settle

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not CHROMIUM.is_file():
    pytest.skip(f"no browser at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

# What the test types in (widget key -> text); none of them is the page's default.
TYPED = {
    "train-folder": "reload-run",
    "train-channels": "8,16",
    "train-latent": "4",
    "train-batch": "8",
    "train-beta": "2.5",
    "train-epochs": "100000",
}
NUMBERS = ("train-latent", "train-batch", "train-beta", "train-epochs")


def _number(text: str) -> str:
    return f"{float(text):g}"  # as typed: 2.50 and 2.5 alike


def _type(page, name: str, text: str) -> None:
    field = page.locator(f"{key(name)} input")
    field.fill(text)
    field.press("Enter")
    settle(page)


def _shown(page) -> dict[str, str]:
    """The widgets' values as the page shows them, numbers normalised."""
    shown = {}
    for name in TYPED:
        value = page.locator(f"{key(name)} input").input_value()
        shown[name] = _number(value) if name in NUMBERS else value
    return shown


def test_a_reload_during_training_shows_the_runs_own_settings(studio_root: Path, tmp_path: Path):
    workspace = tmp_path / "studio"
    shutil.copytree(studio_root, workspace)
    with serve_app(workspace, "train-reload.log") as url, playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.set_default_timeout(60_000)
            page.goto(url)
            page.wait_for_selector("h1:has-text('Sound VAE Studio')")
            settle(page)
            go(page, "Train")
            for name, text in TYPED.items():
                _type(page, name, text)
            page.locator(f"{key('train-start')} button").click()
            page.wait_for_selector("text=Training process", timeout=120_000)
            shutil.copytree(workspace / "data" / "demo", workspace / "data" / "newer")

            page.reload()  # a new session: it re-attaches from the run's files
            page.wait_for_selector("h1:has-text('Train')")
            page.wait_for_selector("text=Training process", timeout=60_000)
            settle(page)
            typed = {k: _number(v) if k in NUMBERS else v for k, v in TYPED.items()}
            assert _shown(page) == typed
            caption = page.get_by_text("trains on").first.inner_text()
            assert "data/demo" in caption and "newer" not in caption

            page.locator(f"{key('train-stop')} button").click()
            page.wait_for_selector("text=Stopped", timeout=60_000)
        finally:
            browser.close()
