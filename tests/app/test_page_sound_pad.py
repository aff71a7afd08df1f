"""The sound pad's Python side in AppTest (issue 23, findings 11 and 12): what a page posts
never reaches a slider's state unchecked, and a model too big for a browser is never
exported and stays on the server path with one line saying why.

AppTest has no browser, so the pad believes it has one here (``in_a_browser``), and a test
plays the page by setting the component's value in ``session_state``, as the frontend's
``setComponentValue`` does.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from tests.apptest import open_page
from ui import sound_pad

PAD = "synth-pad-directions"  # the Synthesise page's pad in "main directions" mode
HOSTILE = [
    [1e6, "nan", 0, 0],
    [1e6, -1e6, 1e308, 0.5],  # finite, out of range: clipped
    ["1", None, True, {}],
    [float("nan"), float("inf"), -float("inf"), 0.0],  # what a Python-side client can post
    [0.1, 0.2],  # too few
    [0.1] * 400,  # too many
    "nan",
    None,
]


@pytest.fixture
def in_browser(studio_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo workspace with the pad on (as in a browser); exports go to ``tmp_path``."""
    if not sound_pad.RUNTIME.is_file():
        pytest.skip(f"the sound pad is not installed: {sound_pad.INSTALL}")
    monkeypatch.chdir(studio_root)
    monkeypatch.setattr(sound_pad, "in_a_browser", lambda: True)
    monkeypatch.setattr(sound_pad, "MODELS", tmp_path / "models")
    return tmp_path / "models"


def _texts(at) -> str:
    return " ".join(str(e.value) for kind in ("caption", "markdown") for e in at.get(kind))


@pytest.mark.parametrize("values", HOSTILE, ids=range(len(HOSTILE)))
def test_posted_values_never_reach_the_sliders_unchecked(in_browser: Path, values):
    at = open_page("synthesise")
    assert not at.exception
    assert [s.key for s in at.slider] == ["synth-temperature"]  # the pad's sliders, not st's
    at.session_state[PAD] = {"values": values, "revision": 0}
    at.run()
    assert not at.exception, at.exception
    dialled = [at.session_state[f"synth-dir-{i}"] for i in range(4)]
    assert all(math.isfinite(v) and -3.0 <= v <= 3.0 for v in dialled), dialled
    assert "nan" not in _texts(at).lower()
    if values == HOSTILE[1]:
        assert dialled == [3.0, -3.0, 3.0, 0.5]
    # Off: Streamlit's own sliders take the values (out of range raised an exception box).
    at.toggle(key=sound_pad.TOGGLE).set_value(False).run()
    assert not at.exception, at.exception
    assert [s.value for s in at.slider][1:] == dialled


@pytest.mark.parametrize("values", [[7.0], ["nan"], [-1e300], [0.25, 0.5]])
def test_interpolates_alpha_is_checked_too(in_browser: Path, values):
    at = open_page("interpolate")
    assert not at.exception
    at.session_state["interp-pad"] = {"values": values, "revision": 0}
    at.run()
    assert not at.exception, at.exception
    alpha = at.session_state["interp-alpha-value"]
    assert alpha == {7.0: 1.0, -1e300: 0.0}.get(values[0], 0.5)
    at.toggle(key=sound_pad.TOGGLE).set_value(False).run()
    assert not at.exception, at.exception
    assert at.slider(key="interp-alpha").value == alpha


def _big_checkpoint(studio_root: Path, target: Path) -> int:
    """A real checkpoint of 15.6 M parameters (wide channels) on the demo's features and
    codes: the demo folder with its model replaced. Returns its parameter count."""
    from vae.audio.features import FeatureConfig
    from vae.model.checkpoints import save_checkpoint
    from vae.model.conv_vae import ConvVAE, ModelConfig, count_parameters

    shutil.copytree(studio_root / "checkpoints" / "demo", target)
    info = json.loads((target / "config.json").read_text())
    config = ModelConfig.from_dict({**info["model_config"], "channels": [8, 512, 1024]})
    torch.manual_seed(0)
    model = ConvVAE(config)
    save_checkpoint(
        target,
        model=model,
        optimizer=None,
        epoch=info["epoch"],
        feature_config=FeatureConfig.from_dict(info["feature_config"]),
        model_config=config,
        train_config=info["train_config"],
        label_names=info["label_names"],
        dataset_info=info["dataset"],
    )
    return count_parameters(model)


@pytest.mark.slow
def test_a_model_too_big_for_a_browser_stays_on_the_server_and_is_not_exported(
    studio_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Finding 11 and 2: a 64 M-parameter model went to the browser as 455 MB of ONNX, built
    in the server process. Over ``MAX_PARAMETERS`` the page's own sliders play, one caption
    says why, and no export is made."""
    if not sound_pad.RUNTIME.is_file():
        pytest.skip(f"the sound pad is not installed: {sound_pad.INSTALL}")
    workspace = tmp_path / "workspace"
    n = _big_checkpoint(studio_root, workspace / "checkpoints" / "big")
    assert n > sound_pad.exports.MAX_PARAMETERS
    models = tmp_path / "models"
    monkeypatch.chdir(workspace)
    monkeypatch.setattr(sound_pad, "in_a_browser", lambda: True)
    monkeypatch.setattr(sound_pad, "MODELS", models)
    at = open_page("synthesise")
    assert not at.exception, at.exception
    assert [s.key for s in at.slider][1:] == [f"synth-dir-{i}" for i in range(4)]
    assert not at.get("toggle")
    why = sound_pad.exports.too_big(n)
    assert f":material/volume_off: Sound while dragging is off: {why}." in [
        c.value for c in at.caption
    ]
    assert "15.6 M parameters" in why
    assert not models.exists() or not any(models.iterdir())
