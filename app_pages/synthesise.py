"""Synthesise: move through latent space with sliders and hear every move at once."""

import numpy as np
import streamlit as st

from ui import cache, figures, sound_pad, state, widgets
from ui.safe_text import md
from vae.synthesis.latent import along_directions, to_directions

RANGE = 3.0  # sliders reach this many standard deviations of the data either side
RESIDUAL, DRAWS = "synth-residual", "synth-draws"
SLIDERS = "synth-sliders"  # slider key -> value, so the code outlives a page switch
REVISION = "synth-revision"  # counts the moves made here, not by hand (the pad adopts them)
# Slider i along a main direction or a raw dimension: DIRECTION.format(0) is "synth-dir-0".
DIRECTION, DIMENSION = "synth-dir-{}", "synth-dim-{}"
LABEL, TEMPERATURE = "synth-label", "synth-temperature"
MODES = {"main directions": "synth-pad-directions", "raw dimensions": "synth-pad-dimensions"}

st.title("Synthesise")
checkpoint = state.require_checkpoint()
with widgets.user_errors():  # every read of the checkpoint's files: one line, no traceback
    synth = cache.synthesiser(checkpoint)
    k = min(8, synth.latent_dim)
    centre, directions, spread = cache.directions(checkpoint, synth.latent_dim, k)
k = len(directions)


def _set_code(code: np.ndarray) -> None:
    """Point every slider at ``code`` (D,): direction amounts, raw dimensions and the rest."""
    amounts = np.clip(to_directions(code, centre, directions, spread), -RANGE, RANGE)
    for i, value in enumerate(amounts):
        st.session_state[DIRECTION.format(i)] = round(float(value), 2)
    for i, value in enumerate(code):
        st.session_state[DIMENSION.format(i)] = round(float(np.clip(value, -RANGE, RANGE)), 2)
    st.session_state[RESIDUAL] = code - along_directions(centre, directions, spread, amounts)
    st.session_state[REVISION] = st.session_state.get(REVISION, 0) + 1


def _random() -> None:
    draws = st.session_state.get(DRAWS, 0) + 1
    st.session_state[DRAWS] = draws
    said = st.session_state.get(LABEL) if synth.conditional else None
    temperature = st.session_state.get(TEMPERATURE, 1.0)
    _set_code(synth.sample_codes(1, said, temperature, seed=draws)[0].numpy())


def _reset() -> None:
    _set_code(centre.copy())


st.caption(
    "Every slider move decodes a new spectrogram and turns it into sound "
    f"({md(synth.phase_reason)}). "
    "The main directions are the principal axes of the training clips' codes, in standard "
    "deviations of the data; raw dimensions are the code itself. "
    + (
        "Random sample draws from the learned prior: a mixture fitted to the training "
        "clips' codes (of the chosen label), so it lands where real clips do."
        if synth.prior is not None
        else "Random sample draws from N(0, 1), the VAE's prior."
    )
)


def _sound(code: np.ndarray, labels: list[int] | None) -> tuple[np.ndarray, np.ndarray]:
    """The decoded features (bins, frames) and waveform of ``code`` (D,)."""
    feats = synth.decode(code[None, :], labels)[0]
    return cache.frozen(feats, synth.to_audio(feats))


controls, output = st.columns([1, 2])
with controls:
    modes = list(MODES)  # each with a sound pad of its own
    mode = st.radio("Move along", modes, horizontal=True, **state.kept("synth-mode", modes[0]))
    label = None
    if synth.conditional:
        label = st.selectbox(
            "Say",
            synth.label_names,
            help="the label this conditional model generates",
            **state.kept(LABEL, synth.label_names[0], synth.label_names),
        )
    st.slider(
        "Temperature",
        0.1,
        2.0,
        step=0.1,
        help="scale of the random draw: low is typical, high is adventurous",
        **state.kept(TEMPERATURE, 1.0),
    )
    # Side by side the narrow column cut "Random sample" off: one button a row, full width.
    st.button(
        "Random sample",
        key="synth-random",
        on_click=_random,
        icon=":material/casino:",
        width="stretch",
    )
    st.button(
        "Back to the centre",
        key="synth-reset",
        on_click=_reset,
        icon=":material/center_focus_strong:",
        width="stretch",
    )
    # set here, not as a default (callbacks move them), from the code last dialled in: a
    # slider's own value is dropped when the page is left
    slider_keys = [DIRECTION.format(i) for i in range(k)] + [DIMENSION.format(i) for i in range(16)]
    for key in slider_keys:
        st.session_state.setdefault(key, st.session_state.get(SLIDERS, {}).get(key, 0.0))
    live = sound_pad.toggle(synth)
    dials = st.container()  # the sliders (or the pad), drawn by ``dial``


@st.fragment(key="synth-dial")
def dial(dials, output, mode: str, label: str | None, live: bool) -> None:
    """The sliders (or the pad) in ``dials``, the spectrogram and the sound in ``output``: a
    move reruns only this (not the navigation, the sidebar, the controls above the sliders
    or the checkpoint's look-ups). The fewer elements a move redraws, the less the browser
    does: its redraw, not the server's, is most of the time a move takes."""
    with dials:
        residual = st.session_state.get(RESIDUAL, np.zeros(synth.latent_dim, np.float32))
        shown = min(synth.latent_dim, 16)
        if mode == "main directions":
            keys = [DIRECTION.format(i) for i in range(k)]
            names = [f"direction {i + 1} (spread {spread[i]:.2f})" for i in range(k)]
            axes = (centre, directions, spread, residual)
        else:
            keys = [DIMENSION.format(i) for i in range(shown)]
            names = [f"z[{i}]" for i in range(shown)]
            eye = np.eye(synth.latent_dim, dtype=np.float32)[:shown]
            axes = (np.zeros(synth.latent_dim, np.float32), eye, np.ones(shown, np.float32), None)
        if live:
            with widgets.user_errors():  # an export that fails: one line, as on Interpolate
                moved = sound_pad.sliders(
                    synth,
                    checkpoint,
                    names=names,
                    centre=axes[0],
                    directions=axes[1],
                    spread=axes[2],
                    residual=axes[3],
                    amounts=np.array([st.session_state[key] for key in keys]),
                    label=synth.label_index(label) if synth.conditional else -1,
                    value_range=RANGE,
                    revision=st.session_state.get(REVISION, 0),
                    key=MODES[mode],
                )
            for key, value in zip(keys, moved or [], strict=False):
                st.session_state[key] = round(value, 2)
            values = np.array([st.session_state[key] for key in keys], np.float32)
        else:
            values = np.array(
                [
                    st.slider(name, -RANGE, RANGE, step=0.05, key=key)
                    for name, key in zip(names, keys, strict=True)
                ],
                np.float32,
            )
        st.session_state[SLIDERS] = {key: st.session_state[key] for key in slider_keys}
        code = along_directions(axes[0], axes[1], axes[2], values)
        if axes[3] is not None:
            code = code + axes[3]
        if mode != "main directions" and shown < synth.latent_dim:
            st.caption(f"dimensions {shown}..{synth.latent_dim - 1} stay at 0")

    with widgets.user_errors():
        labels = [synth.label_index(label)] if synth.conditional else None
        code = np.asarray(code, np.float32)
        feats, wave = cache.sound(
            checkpoint, "code", (code.tobytes(), labels), lambda: _sound(code, labels)
        )
    with output:
        name = f"sample-{label}" if label is not None else "sample"
        picture = st.empty()  # above the player, drawn after it: the sound comes first
        widgets.play(wave, synth.config.sample_rate)
        picture.plotly_chart(
            figures.spectrograms([(name, feats)], synth.config, height=360),
            key="synth-spectrogram",
        )
        widgets.download_wav(
            wave, synth.config.sample_rate, f"{name}.wav", "Download WAV", key="synth-download"
        )
        st.caption("code: " + ", ".join(f"{v:+.2f}" for v in code[:16]))


dial(dials, output, mode, label, live)
