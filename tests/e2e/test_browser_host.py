"""DNS rebinding, as an attacker does it (issue 23, finding 13): chromium resolves a name of
the attacker's to this machine (``--host-resolver-rules``), so the page, its websocket and
its Origin all say evil.example. The app shows one line and nothing of itself; under its
own address, and under a name listed in ``VAE_ALLOWED_HOSTS``, it works as before."""

from __future__ import annotations

from pathlib import Path

from tests.browser import BROWSER_ARGS, CHROMIUM, serve_app, settle, with_shipped_checkpoint
from ui.host_check import REFUSED

RULES = "--host-resolver-rules=MAP evil.example 127.0.0.1, MAP studio.test 127.0.0.1"


def _load(browser, url: str):
    """A fresh tab (its own cookies: one session) on ``url`` once the script run is over."""
    tab = browser.new_context().new_page()
    tab.set_default_timeout(60_000)
    tab.goto(url)
    tab.wait_for_selector("[data-testid='stApp']")
    tab.wait_for_timeout(1500)  # the websocket opens and the first run starts
    settle(tab)
    return tab


def test_a_page_under_another_name_shows_one_line_and_nothing_else(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with_shipped_checkpoint(tmp_path)
    with serve_app(tmp_path, "streamlit-host.log", VAE_ALLOWED_HOSTS="studio.test") as url:
        port = url.rsplit(":", 1)[1]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=[*BROWSER_ARGS, RULES])
            try:
                evil = _load(browser, f"http://evil.example:{port}/")
                evil.wait_for_selector("[data-testid='stAlert']")
                assert evil.locator("[data-testid='stAlert']").inner_text().strip() == REFUSED
                assert evil.locator("h1").count() == 0  # no page of the app ran
                assert evil.locator("[data-testid='stSidebarNav']").count() == 0
                assert "fsdd-digits" not in evil.content()  # nor the sidebar's listing
                for good in (f"http://127.0.0.1:{port}/", f"http://studio.test:{port}/"):
                    tab = _load(browser, good)
                    tab.wait_for_selector("h1:has-text('Sound VAE Studio')")
                    assert tab.locator("[data-testid='stSidebarNav']").count() == 1
                    assert REFUSED not in tab.content()
            finally:
                browser.close()
