"""Open one page of the real app (``app.py`` with its navigation and sidebar) in AppTest."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def open_page(page: str, timeout: float = 120, **state) -> AppTest:
    """Run ``app.py`` and switch to ``app_pages/<page>.py``; ``state`` seeds session_state.

    The app reads its workspace (data/, checkpoints/) from the working directory: chdir
    into a workspace (e.g. the ``studio_root`` fixture) before calling.
    """
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    if page != "home":
        at.switch_page(f"app_pages/{page}.py")
        at.run()
    return at
