"""A person's first minutes in one browser session: what the page shows must be what the app
uses.

Drives Debian's chromium through Playwright over ``streamlit run app.py`` in a workspace that
holds the shipped checkpoint, navigating by the sidebar's links (never by reloading, which
would start a new session and hide what a session carries): an offline FSDD download does
not corrupt the feature settings, a new source clears the last preprocess's result, a new
dataset shows in the sidebar, and a stale morph is not offered on Interpolate.

The tests run in order on one page (``page``, module-scoped): each starts from where the
last one left the session. Skips where Playwright or /usr/bin/chromium is missing.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import (
    chromium_tab,
    go,
    key,
    serve_app,
    settle,
    shot,
    with_shipped_checkpoint,
)

FSDD_8K = {  # the fsdd preset's values as the Dataset page's fields show them
    "dataset-sample-rate": "8000",
    "dataset-clip-seconds": "1.016",
    "dataset-hop": "64",
}


def _closed_port() -> int:
    """A port nothing listens on: a download from it fails at once, as offline."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An empty working folder but for the shipped checkpoint."""
    folder = tmp_path_factory.mktemp("first-minutes")
    with_shipped_checkpoint(folder)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def server(workspace: Path) -> Iterator[str]:
    """The app over ``workspace``, the sound pad off and FSDD's URL a closed local port."""
    offline = f"http://127.0.0.1:{_closed_port()}/fsdd.tar.gz"
    with serve_app(workspace, "first-minutes.log", VAE_SOUND_PAD="0", VAE_FSDD_URL=offline) as url:
        yield url


@pytest.fixture(scope="module")
def page(server: str):
    """One browser tab, one Streamlit session, for every test of this file."""
    with chromium_tab(server) as tab:
        yield tab


def click(page, widget_key: str) -> None:
    """Press the button with ``key=widget_key`` and wait for the run it starts."""
    page.locator(f"{key(widget_key)} button").click()
    settle(page, timeout=120)


def field(page, widget_key: str) -> str:
    """What the number input, text input or selectbox with ``key=widget_key`` shows."""
    return page.locator(f"{key(widget_key)} input").input_value()


def type_in(page, widget_key: str, text: str) -> None:
    """Type ``text`` into the input with ``key=widget_key`` and commit it, as with Enter."""
    box = page.locator(f"{key(widget_key)} input")
    box.fill(text)
    box.press("Enter")
    settle(page)


def choose(page, widget_key: str, option: str) -> None:
    """Open the selectbox with ``key=widget_key`` and click ``option``."""
    page.locator(f"{key(widget_key)} button[aria-label='Open']").click()
    page.get_by_role("option", name=option, exact=True).click()
    settle(page)


def current_dataset(page) -> str:
    """The dataset Home marks as current (its line starts with the folder)."""
    line = page.get_by_text("← current").filter(has_text="data/").inner_text()
    return line.split()[0]


def tab(page, title: str) -> None:
    page.get_by_role("tab", name=title).click()


def generate_demo_set(page) -> None:
    """Two clips per class from the Dataset page's demo tab (ten files)."""
    tab(page, "Generate demo set")
    type_in(page, "dataset-demo-n", "2")
    click(page, "dataset-demo")
    page.wait_for_selector("text=(10 audio files)")


def preprocess(page, name: str) -> None:
    """Preprocess the current source into data/``name`` from the Dataset page."""
    type_in(page, "dataset-name", name)
    click(page, "dataset-preprocess")
    page.locator("[data-testid='stAlert']", has_text="Kept ").filter(
        has_text=f"data/{name}"
    ).wait_for()
    settle(page)


def test_an_offline_download_leaves_the_feature_settings_as_shown(page, workspace):
    """Issue 15 item 2: the fields lost their values in a run that stopped before drawing
    them and came back at their minimums, while the server went on using the old ones."""
    go(page, "Dataset")
    generate_demo_set(page)
    assert {k: field(page, k) for k in FSDD_8K} == FSDD_8K
    type_in(page, "dataset-hop", "32")  # a value of the person's own, not the preset's
    tab(page, "Download FSDD")
    click(page, "dataset-fsdd")
    assert page.locator("[data-testid='stAlert']", has_text="could not download").count()
    generate_demo_set(page)
    shot(page, "first-minutes-dataset")
    assert {k: field(page, k) for k in FSDD_8K} == {**FSDD_8K, "dataset-hop": "32"}
    assert (field(page, "dataset-preset"), field(page, "dataset-n-fft")) == ("fsdd", "256")
    assert "(1.016 s at 8000 Hz)" in page.get_by_text("Each clip becomes").inner_text()
    preprocess(page, "first")
    assert "at 8000 Hz" in page.get_by_text("Kept ").inner_text()
    made = json.loads((workspace / "data" / "first" / "config.json").read_text())
    features = made["feature_config"]
    assert (features["sample_rate"], features["hop_length"]) == (8000, 32)  # as shown


def test_a_new_source_clears_the_last_preprocess_result(page):
    """Issue 15 item 5: "Kept ... clips" stayed under Preprocess for a new source."""
    assert page.get_by_text("Kept ").count() == 1
    generate_demo_set(page)
    assert page.get_by_text("Kept ").count() == 0


def test_the_sidebar_follows_a_new_dataset(page):
    """Issue 15 item 1: the sidebar kept showing the first dataset once a second was
    current, and choosing the shown one did nothing."""
    box = "sidebar-dataset"
    assert field(page, box) == "data/first"
    preprocess(page, "second")
    assert field(page, box) == "data/second"
    page.locator("[data-testid='stSidebarNav'] a", has_text="Home").click()
    page.wait_for_selector("h1:has-text('Sound VAE Studio')")
    settle(page)
    assert current_dataset(page) == "data/second"
    choose(page, box, "data/first")  # the sidebar's choice makes it current
    assert current_dataset(page) == "data/first"
    assert field(page, box) == "data/first"


def test_a_morph_is_not_offered_for_ends_it_was_not_made_for(page):
    """Issue 15 item 5 on Interpolate: the player and download of the last morph stayed
    after the path changed."""
    go(page, "Interpolate")
    click(page, "interp-morph")
    download = page.locator(f"{key('interp-download')} button")
    download.wait_for()
    assert download.inner_text().startswith("Download morph-")
    page.locator(key("interp-mode")).get_by_text("slerp").click()
    settle(page)
    shot(page, "first-minutes-interpolate")
    download.wait_for(state="detached", timeout=30_000)
    page.locator(key("interp-mode")).get_by_text("lerp", exact=True).click()
    settle(page)
    download.wait_for(timeout=30_000)  # the same ends and path again: the same morph


# What the reload test types on Train (widget key -> text); none of them is a default.
TYPED = {
    "train-folder": "reload-run",
    "train-channels": "8,16",
    "train-latent-dim": "4",
    "train-batch-size": "8",
    "train-beta": "2.5",
    "train-epochs": "100000",
}
NUMBERS = ("train-latent-dim", "train-batch-size", "train-beta", "train-epochs")


def _as_typed(name: str, text: str) -> str:
    return f"{float(text):g}" if name in NUMBERS else text  # 2.50 and 2.5 alike


def test_a_reload_during_training_shows_the_runs_own_settings(page, workspace):
    """Issue 15 item 4, last because it reloads (a reload is a new Streamlit session: only
    the run's files carry over): the page showed the newest dataset and the default epochs,
    not the running job's own settings."""
    go(page, "Train")
    for name, text in TYPED.items():
        type_in(page, name, text)
    click(page, "train-start")
    page.wait_for_selector("text=Training process", timeout=120_000)
    used = page.get_by_text("trains on").first.inner_text()  # names the run's dataset
    assert "data/first" in used  # the sidebar's choice of the test before
    shutil.copytree(workspace / "data" / "first", workspace / "data" / "newer")
    try:
        page.reload()
        page.wait_for_selector("h1:has-text('Train')")
        page.wait_for_selector("text=Training process", timeout=60_000)
        settle(page)
        shown = {name: _as_typed(name, field(page, name)) for name in TYPED}
        assert shown == {name: _as_typed(name, text) for name, text in TYPED.items()}
        caption = page.get_by_text("trains on").first.inner_text()
        assert "newer" not in caption and caption == used
    finally:
        page.locator(f"{key('train-stop')} button").click()
        page.wait_for_selector("text=Stopped", timeout=60_000)
