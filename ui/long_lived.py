"""The server's long-lived objects set aside from the garbage collector.

Streamlit runs a full collection (``gc.collect(2)``) after every script run, fragment runs
included, so that a session's cyclic garbage (plotly figures, torch graphs) is freed at
once. With torch, torchaudio and plotly imported, that collection walks ~230,000 objects
that live as long as the server (modules, classes, functions): 136-250 ms of CPU per slider
move, more than the move's own work (issue 26). ``gc.freeze()`` moves them to the permanent
generation, which collections skip (they are still freed by reference counting, never by
the cycle collector): the collection after a run then walks only what the runs made, while
a run's garbage still goes at the end of its run.

Modules are imported lazily too (a page's first visit, the sound pad's export, t-SNE), so
the freeze is repeated after a run whenever ``sys.modules`` has grown since the last one:
a handful of times in a server's life. Each freezes only what is alive after a collection;
a live object of a session caught in one and later dropped is freed by reference counting,
and kept only if it sits in a reference cycle: at most once per freeze.
"""

from __future__ import annotations

import gc
import sys
import threading

_lock = threading.Lock()
_modules_at_freeze = 0  # len(sys.modules) when the last freeze was made


def freeze_imports() -> int:
    """Import what every page run uses (torch, torchaudio, plotly), then
    :func:`freeze_new_imports`. Returns how many objects are frozen."""
    import plotly.graph_objects  # noqa: F401  (the figures' classes and validators)
    import plotly.io  # noqa: F401

    import ui.cache  # noqa: F401  (torch, torchaudio and the synthesiser's modules)
    import ui.figures  # noqa: F401

    return freeze_new_imports()


def freeze_new_imports() -> int:
    """Collect, then freeze everything alive, if modules were imported since the last
    freeze (cheap otherwise: one length compared). Returns how many objects are frozen."""
    global _modules_at_freeze
    if len(sys.modules) != _modules_at_freeze:
        with _lock:
            if len(sys.modules) != _modules_at_freeze:
                _modules_at_freeze = len(sys.modules)
                gc.collect()
                gc.freeze()
    return gc.get_freeze_count()
