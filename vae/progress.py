"""The two kinds of progress callback, each with one name.

``Progress`` counts work done: ``progress(done, total)`` (files read, clips scored), what a
bar needs. ``OnEvent`` reports a long job's events as small dicts (``{"event": "epoch",
...}``), what training and vocoder training write to metrics and the CLI prints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Progress = Callable[[int, int], None]
OnEvent = Callable[[dict[str, Any]], None]


def ignore_event(event: dict[str, Any]) -> None:
    """An ``OnEvent`` that drops every event (no one is listening)."""
