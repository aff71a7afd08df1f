"""What every browser test needs before it starts: Playwright and Debian's chromium.

Every test in tests/e2e is skipped, saying which is missing, where either is (one fixture
here rather than a block at the top of each file); a file that needs more (the sound pad's
bundle, the shipped checkpoint) skips on that itself.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.browser import CHROMIUM


def missing_browser() -> str | None:
    """Why a browser test cannot run here, or None when it can."""
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed"
    if not CHROMIUM.is_file():
        return f"no browser at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="session", autouse=True)
def browser_available() -> None:
    """Skip the test, with the reason, without Playwright or chromium."""
    why = missing_browser()
    if why:
        pytest.skip(why)
