"""Synthesise: move through latent space with sliders and hear every move at once."""

import numpy as np
import streamlit as st

from ui import cache, figures, state, widgets
from vae.latent import along_directions, to_directions

RANGE = 3.0  # sliders reach this many standard deviations of the data either side
AMOUNTS, RESIDUAL, DRAWS = "synth.amounts", "synth.residual", "synth.draws"

st.title("Synthesise")
checkpoint = state.require_checkpoint()
with widgets.user_errors():
    synth = cache.synthesiser(checkpoint)
k = min(8, synth.latent_dim)
centre, directions, spread = cache.directions(checkpoint, synth.latent_dim, k)
k = len(directions)


def _set_code(code: np.ndarray) -> None:
    """Point every slider at ``code`` (D,): direction amounts, raw dimensions and the rest."""
    amounts = np.clip(to_directions(code, centre, directions, spread), -RANGE, RANGE)
    for i, value in enumerate(amounts):
        st.session_state[f"synth-dir-{i}"] = round(float(value), 2)
    for i, value in enumerate(code):
        st.session_state[f"synth-dim-{i}"] = round(float(np.clip(value, -RANGE, RANGE)), 2)
    st.session_state[RESIDUAL] = code - along_directions(centre, directions, spread, amounts)


def _random() -> None:
    draws = st.session_state.get(DRAWS, 0) + 1
    st.session_state[DRAWS] = draws
    said = st.session_state.get("synth-label") if synth.conditional else None
    temperature = st.session_state.get("synth-temperature", 1.0)
    _set_code(synth.sample_codes(1, said, temperature, seed=draws)[0].numpy())


def _reset() -> None:
    _set_code(centre.copy())


st.caption(
    f"Every slider move decodes a new spectrogram and turns it into sound ({synth.phase_method}). "
    "The main directions are the principal axes of the training clips' codes, in standard "
    "deviations of the data; raw dimensions are the code itself. "
    + (
        "Random sample draws from the learned prior: a mixture fitted to the training "
        "clips' codes (of the chosen label), so it lands where real clips do."
        if synth.prior is not None
        else "Random sample draws from N(0, 1), the VAE's prior."
    )
)
controls, output = st.columns([1, 2])
with controls:
    mode = st.radio(
        "Move along", ["main directions", "raw dimensions"], key="synth-mode", horizontal=True
    )
    label = None
    if synth.conditional:
        label = st.selectbox(
            "Say",
            synth.label_names,
            key="synth-label",
            help="the label this conditional model generates",
        )
    left, right = st.columns(2)
    left.slider(
        "Temperature",
        0.1,
        2.0,
        1.0,
        0.1,
        key="synth-temperature",
        help="scale of the random draw: low is typical, high is adventurous",
    )
    left.button("Random sample", key="synth-random", on_click=_random, icon=":material/casino:")
    right.button("Back to the centre", key="synth-reset", on_click=_reset)
    for key in [f"synth-dir-{i}" for i in range(k)] + [f"synth-dim-{i}" for i in range(16)]:
        st.session_state.setdefault(key, 0.0)  # set here, not as a default: callbacks move them
    if mode == "main directions":
        amounts = [
            st.slider(
                f"direction {i + 1} (spread {spread[i]:.2f})",
                -RANGE,
                RANGE,
                step=0.05,
                key=f"synth-dir-{i}",
            )
            for i in range(k)
        ]
        residual = st.session_state.get(RESIDUAL, np.zeros(synth.latent_dim, np.float32))
        code = along_directions(centre, directions, spread, np.array(amounts)) + residual
    else:
        shown = synth.latent_dim if synth.latent_dim <= 16 else 16
        code = np.zeros(synth.latent_dim, np.float32)
        for i in range(shown):
            code[i] = st.slider(f"z[{i}]", -RANGE, RANGE, step=0.05, key=f"synth-dim-{i}")
        if shown < synth.latent_dim:
            st.caption(f"dimensions {shown}..{synth.latent_dim - 1} stay at 0")

with widgets.user_errors():
    labels = [synth.label_index(label)] if synth.conditional else None
    feats = synth.decode(code[None, :], labels)[0]  # (bins, frames)
    wave = synth.to_audio(feats)
with output:
    name = f"sample-{label}" if label is not None else "sample"
    st.plotly_chart(
        figures.spectrograms([(name, feats.numpy())], synth.config, height=360),
        key="synth-spectrogram",
    )
    widgets.play(wave, synth.config.sample_rate)
    widgets.download_wav(
        wave, synth.config.sample_rate, f"{name}.wav", "Download WAV", key="synth-download"
    )
    st.caption("code: " + ", ".join(f"{v:+.2f}" for v in code[:16]))
