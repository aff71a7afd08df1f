"""A page's choices survive a visit to another page (issue 15 item 7).

Streamlit drops a keyed widget's value when its page is left: each page keeps its own, so
coming back shows what was chosen, and what the page shows and does is made from it (the
same map, the same sound, the same morph, the epoch total Resume uses). One test, one case
a page: set the widgets, note what the page shows, switch away and back, compare.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

from tests.apptest import chart_traces, clip_coords, open_page
from vae.synthesis.inference import Synthesiser


@dataclass(frozen=True)
class RoundTrip:
    """``settings``: (widget kind, key, value) set in turn, one run each; ``shown``: what the
    page shows, noted before leaving, the same after coming back; ``then``: the page's own
    checks after the return (given the test's AppTest and the noted ``shown``)."""

    page: str
    away: str
    settings: tuple[tuple[str, str, Any], ...]
    shown: Callable[[Any], Any] | None = None
    then: Callable[[Any, Any], None] | None = None
    writes: bool = False  # opened in a private copy of the workspace (Train may start runs)


def _spectrogram(at) -> np.ndarray:
    return chart_traces(at, "synth-spectrogram")[0]["z"]


def _explore(at, _shown) -> None:
    layout = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]
    assert layout["xaxis"]["title"]["text"] == "t-SNE 1"


def _interpolate(at, _shown) -> None:
    at.button(key="interp-morph").click().run()
    assert at.session_state["interp-morph-wav"][0].endswith("-slerp-5.wav")  # what is shown is used


def _said_as_pulses(at, chosen) -> None:
    synth = Synthesiser.load("checkpoints/demo")  # the page's workspace is the cwd
    said = synth.decode(torch.zeros(1, synth.latent_dim), [synth.label_index("pulses")])[0]
    np.testing.assert_allclose(chosen, said.numpy(), atol=1e-5)  # z = 0 said as "pulses"


def _dialled(at, _shown) -> None:
    assert [at.slider(key=f"synth-dir-{i}").value for i in range(4)] == [2.5, 0.0, -1.0, 0.0]


def _train(at, _shown) -> None:
    # A look at another run's folder shows its settings; back to a fresh folder, ours again.
    fresh = at.text_input(key="train-folder").value
    at.text_input(key="train-folder").set_value("demo").run()
    assert at.number_input(key="train-epochs").value == 2  # the shipped demo checkpoint's
    assert at.number_input(key="train-latent-dim").value == 4
    at.text_input(key="train-folder").set_value(fresh).run()
    assert at.number_input(key="train-epochs").value == 45
    assert at.number_input(key="train-beta").value == 0.5


CASES = {
    # t-SNE went back to PCA after a visit to another page; the same map, from the cache.
    "explore-projection": RoundTrip(
        "explore", "synthesise", (("radio", "explore-method", "tsne"),),
        lambda at: clip_coords(chart_traces(at, "explore-map")), _explore,
    ),
    # The path and the steps came back at their defaults.
    "interpolate-path-and-steps": RoundTrip(
        "interpolate", "home",
        (("radio", "interp-mode", "slerp"), ("number_input", "interp-steps", 5)),
        then=_interpolate,
    ),
    # "Say", the temperature and the mode came back at their defaults: the same sound after.
    "synthesise-choices": RoundTrip(
        "synthesise", "explore",
        (
            ("selectbox", "synth-label", "pulses"),
            ("slider", "synth-temperature", 0.5),
            ("radio", "synth-mode", "raw dimensions"),
        ),
        _spectrogram, _said_as_pulses,
    ),
    # The sliders came back at the centre.
    "synthesise-code-dialled": RoundTrip(
        "synthesise", "home", (("slider", "synth-dir-0", 2.5), ("slider", "synth-dir-2", -1.0)),
        _spectrogram, _dialled,
    ),
    # Resume fell back to the default epoch total.
    "train-settings": RoundTrip(
        "train", "explore",
        (
            ("number_input", "train-epochs", 45),
            ("number_input", "train-beta", 0.5),
            ("text_input", "train-channels", "8,16"),
        ),
        then=_train, writes=True,
    ),
}  # fmt: skip
SLOW = {"explore-projection", "interpolate-path-and-steps", "train-settings"}


@pytest.mark.parametrize(
    "name",
    [pytest.param(name, marks=[pytest.mark.slow] if name in SLOW else []) for name in CASES],
)
def test_a_pages_choices_survive_a_visit_to_another_page(request, name: str) -> None:
    case = CASES[name]
    if case.writes:
        request.getfixturevalue("studio_copy")
        at = open_page(case.page)
    else:
        at = request.getfixturevalue("studio_page")(case.page)
    for kind, key, value in case.settings:
        getattr(at, kind)(key=key).set_value(value).run()
    shown = case.shown(at) if case.shown else None
    at.switch_page(f"app_pages/{case.away}.py")
    at.run()
    assert not at.exception
    at.switch_page(f"app_pages/{case.page}.py")
    at.run()
    assert not at.exception
    for kind, key, value in case.settings:
        assert getattr(at, kind)(key=key).value == value, key
    if case.shown:
        back = case.shown(at)
        if isinstance(shown, np.ndarray):
            np.testing.assert_allclose(back, shown, atol=1e-6)
        else:
            assert back == shown
    if case.then:
        case.then(at, shown)
