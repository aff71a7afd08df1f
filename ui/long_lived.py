"""The server's long-lived objects set aside from the garbage collector, once per process.

Streamlit runs a full collection (``gc.collect(2)``) after every script run, fragment runs
included, so that a session's cyclic garbage (plotly figures, torch graphs) is freed at
once. With torch, torchaudio and plotly imported, that collection walks ~230,000 objects
that live as long as the server (modules, classes, functions): 136-250 ms of CPU per slider
move, five times the move's own work (issue 26). ``gc.freeze()`` after those imports moves
them to the permanent generation, which collections skip (they are freed by reference
counting as before, never by the cycle collector): the collection after a run then walks
only what the runs made, and costs under a millisecond, while a run's garbage still goes
at the end of the run.
"""

from __future__ import annotations

import gc

import streamlit as st


@st.cache_resource(show_spinner=False)
def freeze_imports() -> int:
    """Import what every page run uses, collect, then freeze everything alive; once per
    server process. Returns how many objects were frozen (for tests and the curious).

    Only objects alive now are frozen: later garbage is collected as usual. What is frozen
    by this first run beside the imports (its session's few objects) is at most kept once.
    """
    import plotly.graph_objects  # noqa: F401  (the figures' classes and validators)
    import plotly.io  # noqa: F401

    import ui.cache  # noqa: F401  (torch, torchaudio and the synthesiser's modules)
    import ui.figures  # noqa: F401

    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
