"""The sound pad: sound that follows the hand, made in the browser.

A Streamlit component of the project's own (``frontend/``: plain JS, no bundler) that runs
the checkpoint's exported decoder with ONNX Runtime Web and recovers phase with a
Griffin-Lim that does torchaudio's arithmetic, so a Synthesise slider, the Interpolate α or
a point dragged over the latent map sounds while it moves, with no round trip to the server.
The server hears only where the hand let go, and redraws its own figures and downloads.

The pages fall back to their Streamlit widgets (the server path) when the pad cannot run:
its bundle is not installed (``npm ci --prefix ui/sound_pad/frontend``), the FFT size is not
a power of two, the server's phase is the checkpoint's vocoder (the pad has only
Griffin-Lim: one phase a person hears, dragging or not), the model has more than
``exports.MAX_PARAMETERS`` parameters (decided before anything is exported), it is switched
off (the toggle, or ``VAE_SOUND_PAD=0``), or there is no browser (``AppTest``).
Griffin-Lim's iterations and momentum come from the export's manifest, the settings the
server uses. Everything it serves comes from the app's own server: ONNX Runtime Web from
``frontend/node_modules`` (installed from the npm registry) and the exported decoder from
``frontend/models/``
(git-ignored; one folder per checkpoint content, kept while pages use it: ``exports.py``).
A page that cannot load its model file posts ``{"reload": url}`` and gets a new export.
The values a page posts are checked (finite, clipped to the controls' range) before use.
"""

from __future__ import annotations

import math
import os
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
import streamlit.components.v1 as components

from ui.figures import LEVELS
from ui.sound_pad import exports
from ui.sound_pad.exports import Exported
from vae.model.conv_vae import count_parameters
from vae.synthesis.inference import Synthesiser

FRONTEND = Path(__file__).resolve().parent / "frontend"
RUNTIME = FRONTEND / "node_modules" / "onnxruntime-web" / "dist" / "ort.wasm.min.js"
MODELS = FRONTEND / "models"
INSTALL = "npm ci --prefix ui/sound_pad/frontend"
SWITCH = "pad-on"  # session key of the pages' "Sound while dragging" choice
TOGGLE = "pad-toggle"  # its widget
ENV_SWITCH = "VAE_SOUND_PAD"  # "0" turns the pad off for every session
RELOADED = "pad-reloaded"  # session key: model URLs the pads could not load, replaced
MAX_RELOADS = 3  # replacements a session may ask for

_component = components.declare_component("sound_pad", path=str(FRONTEND))


def unavailable(synth: Synthesiser) -> str | None:
    """Why the pad cannot play this checkpoint here, or None when it can."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return f"in-browser sound is switched off ({ENV_SWITCH}=0)"
    if synth.phase_method != "griffin-lim":
        # Dragging would sound through Griffin-Lim and letting go through the vocoder.
        return (
            "this checkpoint's sound comes from its vocoder, and the in-browser player has "
            "only Griffin-Lim; here the server makes each sound"
        )
    if not RUNTIME.is_file():
        return f"in-browser sound is not installed: run `{INSTALL}` and reload"
    n_fft = synth.config.n_fft
    if n_fft & (n_fft - 1):
        return f"in-browser sound needs a power-of-two FFT size (this model's is {n_fft})"
    too_big = exports.too_big(count_parameters(synth.checkpoint.model))
    if too_big is not None:  # before anything is exported in this process
        return too_big
    if not in_a_browser():
        return "no browser (the page is running headless)"
    return None


def in_a_browser() -> bool:
    """Whether a browser shows this session (AppTest runs pages without one)."""
    return bool(st.context.headers)


def toggle(synth: Synthesiser) -> bool:
    """The "Sound while dragging" switch (shared by the pages); True when the pad plays."""
    reason = unavailable(synth)
    st.session_state.setdefault(SWITCH, True)
    if reason is not None:
        if "headless" not in reason:
            st.caption(f":material/volume_off: Sound while dragging is off: {reason}.")
        return False
    on = st.toggle(
        "Sound while dragging",
        value=st.session_state[SWITCH],
        key=TOGGLE,
        help="decode and make the sound in this browser as you move (the server redraws "
        "the figures and downloads when you let go); off: the server makes each sound",
    )
    st.session_state[SWITCH] = on
    return on


def exported(checkpoint: str | Path, failed_url: str | None = None) -> Exported:
    """The checkpoint's decoder exported for the page, once per checkpoint content (made
    again when its folder is gone, or when the page could not load ``failed_url``)."""
    spinner = partial(st.spinner, "Preparing the in-browser player...")  # only while exporting
    return exports.ensure(Path(checkpoint), MODELS, failed_url, building=spinner)


def _reload_request(key: str) -> str | None:
    """The model URL the pad at ``key`` could not load and asks to replace, once per URL
    and at most :data:`MAX_RELOADS` times a session (a model no browser can load must not
    be exported again and again)."""
    value = st.session_state.get(key)
    url = value.get("reload") if isinstance(value, dict) else None
    if not isinstance(url, str):
        return None
    done = st.session_state.setdefault(RELOADED, [])
    if url in done or len(done) >= MAX_RELOADS:
        return None
    done.append(url)
    return url


def _common(synth: Synthesiser, checkpoint: str | Path, key: str) -> dict[str, Any]:
    export = exported(checkpoint, _reload_request(key))
    feature = {k: v for k, v in export.info["feature_config"].items() if k != "format_version"}
    return {
        "model_url": export.model_url,
        "feature_config": feature,
        "mel_pinv": export.info.get("mel_pinv"),
        "phase": export.info["phase"],  # Griffin-Lim's n_iter and momentum, as the server's
        "latent_dim": synth.latent_dim,
        "conditional": synth.conditional,
        # the server's spectrogram colours (ui.figures), so the pad's picture matches theirs
        "colourscale": LEVELS,
    }


def _one_hot(synth: Synthesiser, label: int) -> list[float] | None:
    if not synth.conditional:
        return None
    weights = np.zeros(len(synth.label_names), np.float32)
    weights[label] = 1.0
    return weights.tolist()


def _floats(array: np.ndarray | Any) -> list:
    return np.asarray(array, dtype=np.float64).round(6).tolist()


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _accepted(value: Any, revision: int, n: int, lo: float, hi: float) -> list[float] | None:
    """The values the hand left, if they answer the values Python last set (a reply to an
    older revision is stale: Random sample or Reset moved on since) and are ``n`` finite
    numbers, each clipped to the controls' range [lo, hi]: whatever a page posts, no NaN
    reaches a code and no out-of-range value a slider's state. Anything else is ignored."""
    if not isinstance(value, dict):
        return None
    if value.get("error"):
        st.warning(f"In-browser sound failed ({value['error']}); switch it off to use the server.")
        return None
    values = value.get("values")
    if value.get("revision") != revision or not isinstance(values, list) or len(values) != n:
        return None
    if not all(_finite_number(v) for v in values):
        return None
    return [min(max(float(v), lo), hi) for v in values]


def sliders(
    synth: Synthesiser,
    checkpoint: str | Path,
    *,
    names: list[str],
    centre: np.ndarray,
    directions: np.ndarray,
    spread: np.ndarray,
    residual: np.ndarray | None,
    amounts: np.ndarray,
    label: int,
    value_range: float,
    revision: int,
    key: str,
) -> list[float] | None:
    """Sliders along ``directions`` (k, D) around ``centre`` (D,), in units of ``spread`` (k,):
    code = centre + residual + sum_k amounts[k] spread[k] directions[k], as
    :func:`vae.synthesis.latent.along_directions`. Returns the amounts where the hand let go."""
    value = _component(
        mode="sliders",
        names=names,
        centre=_floats(centre),
        directions=_floats(directions),
        spread=_floats(spread),
        residual=None if residual is None else _floats(residual),
        values=_floats(amounts),
        label_weights=_one_hot(synth, label),
        range=value_range,
        step=0.05,
        revision=revision,
        key=key,
        default=None,
        **_common(synth, checkpoint, key),
    )
    return _accepted(value, revision, len(names), -value_range, value_range)


def alpha(
    synth: Synthesiser,
    checkpoint: str | Path,
    *,
    code_a: np.ndarray,
    code_b: np.ndarray,
    label_a: int,
    label_b: int,
    value: float,
    interpolation: str,
    revision: int,
    key: str,
) -> float | None:
    """One slider α from code A (0) to code B (1), lerp or slerp as
    :meth:`Synthesiser.blend` (the label's one-hot weight moves with it). Returns α where
    the hand let go."""
    reply = _component(
        mode="alpha",
        names=["α: 0 is A, 1 is B"],
        code_a=_floats(code_a),
        code_b=_floats(code_b),
        weights_a=_one_hot(synth, label_a),
        weights_b=_one_hot(synth, label_b),
        interpolation=interpolation,
        values=[float(value)],
        range=1.0,
        step=0.01,
        revision=revision,
        key=key,
        default=None,
        **_common(synth, checkpoint, key),
    )
    accepted = _accepted(reply, revision, 1, 0.0, 1.0)
    return None if accepted is None else accepted[0]


def pad(
    synth: Synthesiser,
    checkpoint: str | Path,
    *,
    centre: np.ndarray,
    axes: np.ndarray,
    points: np.ndarray,
    point_labels: np.ndarray,
    palette: list[str],
    axis_names: list[str],
    position: tuple[float, float],
    label: int,
    revision: int,
    key: str,
) -> tuple[float, float] | None:
    """A 2-D pad over the latent map: the position (x, y) is the code
    centre + x axes[0] + y axes[1]; ``points`` (N, 2) are the clips in the same plane,
    drawn under it. Returns the position where the hand let go."""
    points = np.asarray(points, dtype=np.float64)
    span = float(np.abs(points).max()) * 1.1 if len(points) else 3.0
    rows = np.column_stack([points.round(4), np.asarray(point_labels, np.int64)])
    reply = _component(
        mode="pad",
        names=axis_names,
        axis_names=axis_names,
        centre=_floats(centre),
        axes=_floats(axes),
        points=rows.tolist(),
        palette=palette,
        extent=[-span, span, -span, span],
        values=[float(position[0]), float(position[1])],
        label_weights=_one_hot(synth, label),
        range=span,
        revision=revision,
        key=key,
        default=None,
        **_common(synth, checkpoint, key),
    )
    accepted = _accepted(reply, revision, 2, -span, span)
    return None if accepted is None else (accepted[0], accepted[1])
