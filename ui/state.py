"""What the user is working on: the current dataset and checkpoint, shown on every page.

The choice lives in ``st.session_state`` under keys of our own, so it survives page switches
(a keyed widget's value is dropped when its page is left) and stays per browser session.

Every session-state and widget key is ``"<page>-<name>"``, lowercase with dashes, and a key
that code reads or writes is a constant at the top of the module that owns it: pages use
``home``, ``dataset``, ``train``, ``explore``, ``interp``, ``synth``, ``evaluate``; the sidebar
``sidebar``, the sound pad ``pad``, and what this module keeps for every page ``studio``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from ui.export_panel import checkpoint_downloads
from ui.safe_text import md
from vae.workspace import Item, list_checkpoints, list_datasets, newest_usable

if TYPE_CHECKING:
    from vae.synthesis.inference import Clip

# The current dataset and checkpoint folders (str): chosen in the sidebar or by a page.
DATASET = "studio-dataset"
CHECKPOINT = "studio-checkpoint"
# The sidebar pickers' widget keys, by the key of the choice they show.
PICKERS = {DATASET: "sidebar-dataset", CHECKPOINT: "sidebar-checkpoint"}
# Choices that outlive their page (a projection, a label, a preset): widget key -> value.
# Written only through ``kept`` and its on_change.
KEPT = "studio-kept"
# Clips picked on the Explore map (ids, most recent last): Interpolate offers the last two
# as A and B. Written only through ``remember_selection``.
SELECTED = "studio-selected"
# Clips of the user's own (an upload or a recording placed on Explore) sent to Interpolate
# as end "a" or "b": side -> (clip, not yet seen by Interpolate).
HANDED = "studio-handed"


def _pick(items: list[Item], key: str) -> Path | None:
    """The stored choice when it is still on disk, else the newest item not damaged (or
    None): a folder whose files are refused is opened only when a person picks it."""
    stored = st.session_state.get(key)
    paths = [str(item.path) for item in items]
    if stored in paths:
        return Path(stored)
    usable = newest_usable(items)
    return usable.path if usable else None


def select(key: str, path: str | Path | None) -> None:
    """Make ``path`` the current dataset (``DATASET``) or checkpoint (``CHECKPOINT``)."""
    st.session_state[key] = None if path is None else str(path)


def current_dataset() -> Path | None:
    """The chosen dataset folder, or the newest one on disk, or None."""
    return _pick(list_datasets(), DATASET)


def current_checkpoint() -> Path | None:
    """The chosen checkpoint folder, or the newest one on disk, or None."""
    return _pick(list_checkpoints(), CHECKPOINT)


def _picker(title: str, items: list[Item], key: str, empty: str) -> None:
    """A sidebar box showing the current item of ``key``: its widget state is set from the
    choice on every run, since a keyed selectbox ignores ``index`` once it has a value and
    would go on showing an item another page has since replaced."""
    if not items:
        st.sidebar.caption(f"{title}: {empty}")
        return
    paths = [str(item.path) for item in items]
    summaries = {str(item.path): item.summary for item in items}
    current = _pick(items, key)
    widget = PICKERS[key]
    st.session_state[widget] = None if current is None else str(current)
    st.sidebar.selectbox(
        title,
        paths,
        index=None,
        key=widget,
        placeholder="all damaged: pick one to see why",
        # the help is Markdown (a line per folder): names and summaries come from disk
        help="  \n".join(f"{md(p)}: {md(s)}" for p, s in summaries.items()),
        on_change=lambda: select(key, st.session_state[widget]),
    )
    if current is not None:
        st.sidebar.caption(md(summaries[str(current)]))


def sidebar() -> None:
    """The dataset and checkpoint pickers drawn on every page by ``app.py``."""
    st.sidebar.header("Workspace")
    _picker("Dataset", list_datasets(), DATASET, "none yet (make one on the Dataset page)")
    _picker("Checkpoint", list_checkpoints(), CHECKPOINT, "none yet (train one on the Train page)")
    checkpoint = current_checkpoint()
    if checkpoint is not None:  # the current one, with or without a dataset (issue 24, item 3)
        with st.sidebar.expander("Download / export"):
            checkpoint_downloads(checkpoint, "sidebar")


def _remember(widget_key: str, then: Callable[[], None] | None) -> None:
    st.session_state.setdefault(KEPT, {})[widget_key] = st.session_state[widget_key]
    if then is not None:
        then()


def kept(
    widget_key: str,
    default: Any,
    options: Sequence[Any] | None = None,
    on_change: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """The ``key`` and ``on_change`` arguments of a widget whose value outlives its page.

    Call just before drawing the widget, and pass no default to the widget itself. The value
    lives under ``KEPT`` and is written to the widget's key on every run: a keyed widget's
    value is dropped when its page is left (or a run stops before it is drawn), and a
    redrawn one otherwise shows its default in the browser while the server holds another.
    A stored value no longer among ``options`` falls back to ``default``; ``on_change`` runs
    after the new value is stored.

    Returns:
        ``{"key", "on_change", "args"}`` to unpack into the widget call.
    """
    value = st.session_state.get(KEPT, {}).get(widget_key, default)
    if options is not None and value not in options:
        value = default
    st.session_state[widget_key] = value  # a default stays one: stored only when chosen
    return {"key": widget_key, "on_change": _remember, "args": (widget_key, on_change)}


def kept_value(widget_key: str, default: Any = None) -> Any:
    """The kept value of ``widget_key`` (as ``kept`` stores it), e.g. for a callback that
    runs before the widget is drawn."""
    return st.session_state.get(KEPT, {}).get(widget_key, default)


def keep_value(widget_key: str, value: Any) -> None:
    """Store ``value`` for ``widget_key`` from code (a preset, a callback): the widget shows
    it on its next drawing."""
    st.session_state.setdefault(KEPT, {})[widget_key] = value


def require_dataset() -> Path:
    """The current dataset, or an explanation and a stopped page."""
    path = current_dataset()
    if path is None:
        _stop_for_damaged(list_datasets(), "dataset", "make a new one on the **Dataset** page")
        st.info("No dataset yet: make one on the **Dataset** page.")
        st.stop()
    return path


def require_checkpoint() -> Path:
    """The current checkpoint, or an explanation and a stopped page."""
    path = current_checkpoint()
    if path is None:
        _stop_for_damaged(list_checkpoints(), "checkpoint", "train a new one on the **Train** page")
        st.info("No checkpoint yet: train one on the **Train** page.")
        st.stop()
    return path


def _stop_for_damaged(items: list[Item], kind: str, fix: str) -> None:
    """When every folder of ``kind`` on disk is damaged (none is opened by default), say
    which and why, and stop: "none yet" would hide that they are there."""
    if not items:
        return
    why = "; ".join(f"{md(str(item.path))}: {md(item.summary)}" for item in items[:3])
    more = f" (and {len(items) - 3} more)" if len(items) > 3 else ""
    st.error(
        f"Every {kind} on disk is damaged, so none is opened: {why}{more}. "
        f"Pick one in the sidebar to see the whole error, or {fix}."
    )
    st.stop()


def remember_selection(clip_id: str, keep: int = 2) -> None:
    """Add ``clip_id`` to the map selection, keeping the last ``keep`` distinct ids."""
    chosen = [c for c in st.session_state.get(SELECTED, []) if c != clip_id] + [clip_id]
    st.session_state[SELECTED] = chosen[-keep:]


def selected_clips() -> list[str]:
    """Clip ids picked on the map, most recent last."""
    return list(st.session_state.get(SELECTED, []))


def hand_over(side: str, clip: Clip) -> None:
    """Send ``clip`` to Interpolate as its end ``side`` ("a" or "b")."""
    st.session_state.setdefault(HANDED, {})[side] = (clip, True)


def handed_over(side: str) -> tuple[Clip | None, bool]:
    """The clip sent for end ``side`` (None when none was) and whether it is new since the
    last call, so that Interpolate switches to it once and then leaves the choice to the user."""
    clip, new = st.session_state.get(HANDED, {}).get(side, (None, False))
    if new:
        st.session_state[HANDED][side] = (clip, False)
    return clip, new
