"""What every browser test and benchmark needs: the app served on 127.0.0.1, Debian's
chromium through Playwright, and the small waits a Streamlit page needs.

Used by tests/test_browser*.py and benchmarks/sound_pad_latency.py (no pytest import
here, so a benchmark can use it as a plain module).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
SHOTS = ROOT / "test-artifacts" / "screenshots"
SHIPPED = ROOT / "checkpoints" / "fsdd-digits"
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # Web Audio plays in a headless page without a person's gesture first.
    "--autoplay-policy=no-user-gesture-required",
]
PAD_FRAME = "iframe[title='ui.sound_pad.sound_pad']"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_shipped_checkpoint(workspace: Path) -> Path:
    """Copy the shipped checkpoint into ``workspace/checkpoints`` (the app lists the working
    folder's checkpoints); returns the copy."""
    target = workspace / "checkpoints" / SHIPPED.name
    shutil.copytree(SHIPPED, target, ignore=shutil.ignore_patterns("judge"))
    return target


@contextlib.contextmanager
def serve_app(workspace: Path, log_name: str = "streamlit.log", **env: str) -> Iterator[str]:
    """``streamlit run app.py`` with ``workspace`` as the working folder and ``env`` added
    to the environment; yields its URL and stops it (and any training it started) after."""
    port = free_port()
    SHOTS.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "app.py"),
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
    ]
    environ = dict(os.environ, PYTHONPATH=str(ROOT), **env)
    with open(SHOTS.parent / log_name, "w") as log:
        proc = subprocess.Popen(
            cmd, cwd=workspace, env=environ, stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    proc.kill()
                    raise RuntimeError(f"streamlit did not start; see {log.name}") from None
                time.sleep(0.3)
        try:
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            # a training the test left behind must not outlive it
            subprocess.run(["pkill", "-f", f"vae train {workspace}"], check=False)


@contextlib.contextmanager
def chromium_tab(url: str, *extra_args: str, timeout_ms: int = 60_000, **context) -> Iterator:
    """A tab of Debian's chromium on ``url`` (1500 x 1300), the app's home page drawn;
    ``extra_args`` go to chromium, ``context`` to its browser context (permissions...).
    ``tab.requested`` lists every URL the page, its frames and workers asked for."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=[*BROWSER_ARGS, *extra_args]
        )
        try:
            ctx = browser.new_context(viewport={"width": 1500, "height": 1300}, **context)
            tab = ctx.new_page()
            tab.requested = []
            ctx.on("request", lambda request: tab.requested.append(request.url))
            tab.set_default_timeout(timeout_ms)
            tab.goto(url)
            tab.wait_for_selector("h1:has-text('Sound VAE Studio')")
            settle(tab)
            yield tab
        finally:
            browser.close()


def key(name: str) -> str:
    """CSS selector of the element Streamlit wraps a widget with ``key=name`` in."""
    return ".st-key-" + "".join(c if c.isalnum() or c in "_-" else "-" for c in name)


# The app's own record of its script run ("notRunning" once a run is over; a widget's change
# makes it "rerunRequested" at once), which the running indicator shows only after a delay:
# on a busy machine a run could start after the indicator was looked for.
IDLE = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return !document.querySelector('[data-testid="stStatusWidget"]')
        && app !== null && app.dataset.testScriptState === 'notRunning';
}"""


def settle(page, timeout: float = 60) -> None:
    """Wait until the script run is over: Streamlit's running indicator gone and its script
    state ``notRunning``."""
    page.wait_for_timeout(300)
    page.wait_for_function(IDLE, timeout=timeout * 1000)


def one(page, selector: str):
    """The element matching ``selector`` once a rerun's stale copy of it is gone."""
    page.wait_for_function(f"() => document.querySelectorAll({selector!r}).length === 1")
    return page.locator(selector)


def go(page, title: str) -> None:
    """Click a page in the sidebar navigation, as a person would."""
    page.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
    page.wait_for_selector(f"h1:has-text('{title}')")
    settle(page)


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def pad_frame(page, timeout_ms: int = 90_000):
    """The sound pad's frame once its player has made its first sound."""
    page.wait_for_selector(PAD_FRAME, timeout=timeout_ms)
    frame = page.frame_locator(PAD_FRAME)
    frame.locator("#root[data-state='ready']").wait_for(timeout=timeout_ms)
    return frame


# In-frame timing: the time of each input event (the browser's own timestamp) and of each
# new sound (data-rendered-at), so a latency is the page's, not Playwright's round trip.
WATCH_JS = """() => {
  const root = document.getElementById('root');
  window.__inputs = []; window.__sounds = [];
  const note = (e) => window.__inputs.push(performance.timeOrigin + e.timeStamp);
  for (const type of ['keydown', 'pointermove', 'pointerdown'])
    document.addEventListener(type, note, { capture: true });
  new MutationObserver(() => window.__sounds.push(Number(root.dataset.renderedAt)))
    .observe(root, { attributes: true, attributeFilter: ['data-rendered-at'] });
}"""


def pad_js(page, script: str, arg=None):
    """Evaluate ``script`` (a JS function) inside the sound pad's frame."""
    frame = next(f for f in page.frames if "sound_pad" in (f.url or ""))
    return frame.evaluate(script, arg)
