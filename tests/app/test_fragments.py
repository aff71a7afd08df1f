"""A move on Synthesise, Interpolate and Explore reruns only its own part of the page
(issue 26, cheap redraws): the page's fragment, not the navigation, the sidebar or the work
above it, and a sound heard before is not made again.

AppTest reruns the whole script on every widget change; a browser sends the id of the
fragment the widget lives in, and the server runs only that. ``fragment_run`` sends the id
as the browser does (AppTest has no API for it: its ``RerunData`` is given the id).
"""

from __future__ import annotations

import functools
from unittest import mock

import numpy as np
import pytest
import streamlit.testing.v1.local_script_runner as local_script_runner
from streamlit.runtime.scriptrunner import RerunData

import ui.state
from tests.apptest import audio_urls, chart_traces, map_click_states
from vae.synthesis.inference import Synthesiser


def fragment_run(at, fragment_key: str, states=None) -> None:
    """Rerun only the fragment ``@st.fragment(key=fragment_key)`` with the page's widget
    values (or ``states``), as the browser does after a move of a widget inside it."""
    [fragment_id] = at._fragment_storage.resolve_target(fragment_key)
    rerun = functools.partial(RerunData, fragment_id=fragment_id)
    with mock.patch.object(local_script_runner, "RerunData", rerun):
        at._run(states if states is not None else at._tree.get_widget_states())
    assert not at.exception


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts of the work a move may do: the sidebar (drawn by app.py on every full run),
    encoding, and decoding + Griffin-Lim (``to_audio``)."""
    counts = {"sidebar": 0, "encode": 0, "to_audio": 0}

    def counted(name, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(ui.state, "sidebar", counted("sidebar", ui.state.sidebar))
    for name in ("encode", "to_audio"):
        monkeypatch.setattr(Synthesiser, name, counted(name, getattr(Synthesiser, name)))
    return counts


def _zero(counts: dict[str, int]) -> None:
    for name in counts:
        counts[name] = 0


def test_a_slider_move_on_synthesise_reruns_only_the_dial(studio_page, calls):
    at = studio_page("synthesise")
    assert calls["sidebar"] >= 1  # the counter sees a full run (home, then this page)
    before, sound = chart_traces(at, "synth-spectrogram")[0]["z"], audio_urls(at)
    _zero(calls)
    at.slider(key="synth-dir-0").set_value(2.5)
    fragment_run(at, "synth-dial")
    after = chart_traces(at, "synth-spectrogram")[0]["z"]
    assert np.abs(after - before).max() > 0.01 and audio_urls(at) != sound
    assert calls == {"sidebar": 0, "encode": 0, "to_audio": 1}  # nothing outside the dial
    at.slider(key="synth-dir-0").set_value(0.0)
    fragment_run(at, "synth-dial")  # back where it was: the sound heard before, not made again
    np.testing.assert_allclose(chart_traces(at, "synth-spectrogram")[0]["z"], before, atol=1e-6)
    assert audio_urls(at) == sound and calls["to_audio"] == 1
    at.run()  # a full run (the sidebar again) at the same code: its sound is kept
    assert calls["sidebar"] == 1 and calls["to_audio"] == 1
    assert at.slider(key="synth-temperature").value == 1.0  # the controls above are back


def _maps(at) -> int:
    """How many of the last run's charts are Interpolate's latent map."""
    return sum("interp-map" in e.proto.id for e in at.get("plotly_chart"))


def test_an_alpha_move_on_interpolate_reruns_only_the_path(studio_page, calls):
    at = studio_page("interpolate")
    mix, sounds = chart_traces(at, "interp-spectrograms")[1]["z"], audio_urls(at)
    assert _maps(at) == 1  # drawn by the page's full run
    _zero(calls)
    at.slider(key="interp-alpha").set_value(0.9)
    fragment_run(at, "interp-path")
    assert np.abs(chart_traces(at, "interp-spectrograms")[1]["z"] - mix).max() > 0.01
    # the map (3,000 points in the browser) is outside the fragment: not sent again (AppTest's
    # tree after a fragment run holds what that run sent; the browser keeps the rest)
    assert _maps(at) == 0
    now = audio_urls(at)
    assert now[1] != sounds[1] and (now[0], now[2]) == (sounds[0], sounds[2])
    # neither end encoded again (their codes were taken once by the page), one new mix
    assert calls == {"sidebar": 0, "encode": 0, "to_audio": 1}
    at.slider(key="interp-alpha").set_value(0.5)
    fragment_run(at, "interp-path")  # the α heard at first: its sound is kept
    assert audio_urls(at)[1] == sounds[1] and calls["to_audio"] == 1


def test_a_path_change_on_interpolate_redraws_the_whole_page(studio_page, calls):
    """The morph below the fragment was made for a path (lerp or slerp): changing it inside
    the fragment reruns the page, so a morph for the other path is not offered."""
    at = studio_page("interpolate")
    _zero(calls)
    at.radio(key="interp-mode").set_value("slerp")
    fragment_run(at, "interp-path")
    assert calls["sidebar"] == 1 and at.radio(key="interp-mode").value == "slerp"


def _heading(at) -> str:
    """The picked clip's heading ("<id> — <label>")."""
    return next(h.value for h in at.subheader if "—" in h.value)


def test_a_click_on_the_explore_map_reruns_only_the_picks(studio_page, calls):
    at = studio_page("explore")
    ids = at.selectbox(key="explore-clip").options
    _zero(calls)
    fragment_run(at, "explore-picks", map_click_states(at, ids[4]))
    assert _heading(at).startswith(ids[4]) and len(at.get("audio")) == 2
    assert at.selectbox(key="explore-clip").value == ids[4]  # the picker follows
    # the clip's reconstruction (one Griffin-Lim) and nothing above the map again
    assert calls == {"sidebar": 0, "encode": 1, "to_audio": 1}
    fragment_run(at, "explore-picks", map_click_states(at, ids[7]))
    fragment_run(at, "explore-picks", map_click_states(at, ids[4]))  # back: kept, not made again
    assert _heading(at).startswith(ids[4])
    assert calls["to_audio"] == 2 and calls["sidebar"] == 0
    route = [t for t in chart_traces(at, "explore-map") if t["name"] == "route"][0]
    assert list(route["customdata"]) == [ids[4], ids[7], ids[4]]
