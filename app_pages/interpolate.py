"""Interpolate: morph clip A into clip B through latent space, and download the morph.

Each end is a dataset clip (or a stored code), an upload, a recording made here, or a clip
of your own sent from Explore ("Morph from this" / "Morph to this").
"""

import dataclasses
import hashlib

import numpy as np
import streamlit as st

from ui import cache, figures, pairing, sound_pad, state, widgets
from ui.safe_text import md
from vae.audio.io import wav_bytes
from vae.model.checkpoints import LATENTS_FILE
from vae.synthesis.inference import Clip
from vae.synthesis.latent import interpolation_path

MORPH = "interp-morph-wav"  # (file name, WAV bytes, seconds) of the last morph made
MORPH_FOR = "interp-morph-for"  # what it was made for: shown only while the page still says so
ALPHA = "interp-alpha-value"  # α, kept whether the sound pad or the page's slider moves it
ALPHA_SLIDER = "interp-alpha"
# Each end's widgets, by side ("a" or "b"): END_CLIP.format(side="a") is "interp-a-clip".
END_SOURCE, END_LABEL, END_CLIP = (
    "interp-{side}-source",
    "interp-{side}-label",
    "interp-{side}-clip",
)
END_UPLOAD, END_RECORD = "interp-{side}-upload", "interp-{side}-record"
END_UPLOAD_LABEL = "interp-{side}-ulabel"
END_MODEL_LABEL = "interp-{side}-mlabel"  # a dataset clip's label for the model, when foreign
ANY = "any label"
FROM_EXPLORE = "from Explore"

st.title("Interpolate")
checkpoint = state.require_checkpoint()
with widgets.user_errors():  # every read of the checkpoint's files: one line, no traceback
    synth = cache.synthesiser(checkpoint)
    ds = cache.companion_dataset(checkpoint, synth)
latents, no_map = None, None
try:
    latents = cache.latents(checkpoint)
except widgets.USER_ERRORS as err:
    if (checkpoint / LATENTS_FILE).is_file():  # there but refused: say why, go on without
        st.error(md(widgets.user_message(err)))
    else:
        no_map = err
# Where A and B can be picked from by id: the dataset's clips, else the codes stored in the
# checkpoint (their decoded means stand in for the clips), else only uploads.
if ds is not None:
    LISTED, listed_ids, listed_labels = "dataset clip", list(ds.ids), list(ds.labels)
elif latents is not None:
    LISTED, listed_ids = "stored code", [str(i) for i in latents["ids"]]
    listed_labels = [
        synth.label_names[i] if 0 <= i < len(synth.label_names) else "" for i in latents["labels"]
    ]
else:
    LISTED, listed_ids, listed_labels = None, [], []
# A conditional checkpoint cannot encode a clip with a label it does not know: the user
# picks such clips anyway and chooses which of the checkpoint's labels to encode them with.
FOREIGN = pairing.foreign_labels(synth, ds)


def _identity(clip: Clip) -> tuple:
    """What tells one end from another: its name, label and a digest of its features
    (two uploads may share a name)."""
    digest = hashlib.sha1(clip.features.numpy().tobytes()).hexdigest()
    return clip.name, clip.label, digest


def _listed_clip(clip_id: str, label: str | None = None):
    """A clip by id; ``label`` (one of the checkpoint's) stands in for a foreign own one."""
    if label is not None and ds is not None:
        return synth.clip_from_dataset(ds, clip_id, label)
    return cache.clip(checkpoint, synth, ds, clip_id)


def _with_code(clip: Clip) -> Clip:
    """``clip`` with its code (its stored mean, else its posterior mean) at hand."""
    return clip if clip.code is not None else dataclasses.replace(clip, code=synth.code_of(clip))


def _use_map_selection() -> None:
    picked = state.selected_clips()
    for side, clip_id in zip(("a", "b"), picked[-2:] if len(picked) > 1 else picked, strict=False):
        st.session_state[END_SOURCE.format(side=side)] = LISTED
        st.session_state[END_LABEL.format(side=side)] = ANY
        st.session_state[END_CLIP.format(side=side)] = clip_id


def choose_end(side: str, column, fallback: int):
    """Widgets for one end of the path; returns its Clip or None when not chosen yet."""
    handed, new = state.handed_over(side)
    if new:  # just sent from Explore: show it (the radio is not drawn yet this run)
        st.session_state[END_SOURCE.format(side=side)] = FROM_EXPLORE
    with column:
        st.subheader(f"Clip {side.upper()}")
        sources = ([LISTED] if LISTED else []) + ["upload", "record"]
        sources += [FROM_EXPLORE] if handed is not None else []
        source = st.radio("From", sources, key=END_SOURCE.format(side=side), horizontal=True)
        if source == FROM_EXPLORE:
            st.caption(md(f"Your clip {handed.name!r}, sent from the Explore page."))
            return handed
        if source in ("upload", "record"):
            return _own_end(side, source)
        known = set(listed_labels)
        names = [n for n in (ds.label_names if ds is not None else synth.label_names) if n in known]
        label = st.selectbox("Label", [ANY, *names], key=END_LABEL.format(side=side))
        ids = [i for i, lab in zip(listed_ids, listed_labels, strict=True) if label in (ANY, lab)]
        clip_key = END_CLIP.format(side=side)
        st.session_state.setdefault(clip_key, ids[min(fallback, len(ids) - 1)])
        if st.session_state[clip_key] not in ids:
            st.session_state[clip_key] = ids[0]
        clip_id = st.selectbox("Clip", ids, key=clip_key)
        model_label = None
        if FOREIGN:
            model_label = st.selectbox(
                "Encode it as",
                synth.label_names,
                key=END_MODEL_LABEL.format(side=side),
                help="the checkpoint is conditional on its own labels: the clip is encoded "
                "together with the one chosen here",
            )
        with widgets.user_errors():
            return _listed_clip(clip_id, model_label)


def _own_end(side: str, source: str):
    """An uploaded or recorded end (the recording at the browser's rate, resampled on
    reading as uploads are), or None until there is one."""
    if source == "upload":
        file = st.file_uploader(
            "Audio file",
            key=END_UPLOAD.format(side=side),
            type=["wav", "flac", "ogg", "aiff", "mp3"],
        )
    else:
        file = st.audio_input(
            f"Record clip {side.upper()}", key=END_RECORD.format(side=side), sample_rate=None
        )
    label = named = None
    if synth.conditional:
        upload = file if source == "upload" else None
        label_key = END_UPLOAD_LABEL.format(side=side)
        named = widgets.label_from_upload(upload, synth.label_names, label_key)
        label = st.selectbox(
            "Its label",
            synth.label_names,
            key=label_key,
            help=f"{widgets.LABEL_WHY}: choose which label this {source} is",
        )
    if file is None:
        st.caption(f"{source.capitalize()} a clip, or pick one from the dataset.")
        return None
    name = f"recording-{side}" if source == "record" else None
    with widgets.user_errors(), st.spinner(f"Reading {md(file.name)}..."):  # an mp3: seconds
        clip = widgets.clip_from_upload(synth, file, label, name)
    if synth.conditional:
        what = "recording" if source == "record" else "clip"
        st.caption(widgets.label_note(label, named, file.name, what))
    return clip


st.caption(
    "Encode two clips, walk the straight (lerp) or spherical (slerp) path between their "
    "codes, and decode each point. A conditional model's label moves from A's to B's too."
)
if ds is None and LISTED:
    st.info(
        "No dataset with this checkpoint's features is on disk: clips picked by id are decoded "
        "from the codes the checkpoint stores (their reconstructions); preprocess the dataset "
        "to start from the originals."
    )
elif ds is None:
    st.info("No dataset with this checkpoint's features is on disk: upload both clips.")
elif FOREIGN:
    st.info(
        md(
            f"This conditional checkpoint does not know the labels {FOREIGN[:4]} of {ds.root}: "
            "choose, for each clip, which of its labels to encode it with (Encode it as), or "
            f"{pairing.PICK_ITS_OWN}."
        )
    )
if LISTED and state.selected_clips():
    st.button(
        "Use the clips picked on the Explore map", key="interp-use-map", on_click=_use_map_selection
    )
col_a, col_b = st.columns(2)
a = choose_end("a", col_a, 0)
b = choose_end("b", col_b, max(len(listed_ids) - 1, 0))
if a is None or b is None:
    st.stop()

# Each end's code once per page run (a dataset clip is encoded here, not on every α move).
a, b = _with_code(a), _with_code(b)


def _blend(a: Clip, b: Clip, alpha: float, mode: str) -> tuple[np.ndarray, ...]:
    """The code (D,), features (bins, frames) and waveform at ``alpha`` of the path."""
    code, feats = synth.blend(a, b, alpha, mode)
    return cache.frozen(code, feats, synth.to_audio(feats))


@st.fragment(key="interp-path")
def along_the_path(a: Clip, b: Clip, page_mode: str) -> None:
    """α, the path, the three spectrograms and sounds: a move of α reruns only this part;
    ``page_mode`` is the path the rest of the page was drawn for."""
    alpha_col, mode_col = st.columns([3, 1])
    mode = mode_col.radio(
        "Path", ["lerp", "slerp"], horizontal=True, **state.kept("interp-mode", "lerp")
    )
    if mode != page_mode:  # the morph below was made for a path: the whole page follows
        st.rerun()
    with alpha_col:
        st.session_state.setdefault(ALPHA, 0.5)
        if sound_pad.toggle(synth):
            with widgets.user_errors():
                moved = sound_pad.alpha(
                    synth,
                    checkpoint,
                    code_a=synth.code_of(a).numpy(),
                    code_b=synth.code_of(b).numpy(),
                    label_a=a.label,
                    label_b=b.label,
                    value=st.session_state[ALPHA],
                    interpolation=mode,
                    revision=0,  # only the hand moves α
                    key="interp-pad",
                )
            if moved is not None:
                st.session_state[ALPHA] = round(moved, 2)
            alpha = st.session_state[ALPHA]
        else:
            st.session_state.setdefault(ALPHA_SLIDER, st.session_state[ALPHA])
            alpha = st.slider("α: 0 is A, 1 is B", 0.0, 1.0, step=0.05, key=ALPHA_SLIDER)
            st.session_state[ALPHA] = alpha
    with widgets.user_errors():
        ends = (*(np.asarray(c.code, np.float32).tobytes() for c in (a, b)), a.label, b.label)
        code, mix, mix_wave = cache.sound(
            checkpoint, "blend", (*ends, alpha, mode), lambda: _blend(a, b, alpha, mode)
        )  # (D,), (bins, frames), (samples,)
    panels = [
        (f"A: {a.name}", a.features.numpy()),
        (f"mix, α = {alpha:.2f}", mix),
        (f"B: {b.name}", b.features.numpy()),
    ]
    picture = st.empty()  # above the players, drawn after them: the sound comes first
    sr = synth.config.sample_rate
    for column, (caption, wave) in zip(
        st.columns(3),
        [("A", a.wave), (f"mix at α = {alpha:.2f}", mix_wave), ("B", b.wave)],
        strict=True,
    ):
        with column:
            widgets.play(wave, sr, caption)
    picture.plotly_chart(figures.spectrograms(panels, synth.config), key="interp-spectrograms")


def path_on_the_map(a: Clip, b: Clip, mode: str) -> None:
    """The path from A to B on Explore's PCA map, outside ``along_the_path``: an α move
    does not redraw 3,000 points (the browser's redraw of the map was most of a move's
    time, the server's building of it the largest part of the rest). The path's nine
    steps are α = 0, 1/8, ..., 1; the mix's α is shown above, on its spectrogram."""
    st.subheader("The path on the latent map")
    if no_map is not None:
        st.caption(f"No map: {md(no_map)}")
    if latents is not None and synth.latent_dim > 1:
        # The same map as Explore's PCA (axes, signs, titles), with the path drawn on it.
        pca = cache.projection(checkpoint, "pca")  # fitted once per checkpoint, not per move
        path_codes = interpolation_path(synth.code_of(a), synth.code_of(b), 9, mode)  # no decode
        names = synth.label_names
        groups = [names[i] if 0 <= i < len(names) else "unlabelled" for i in latents["labels"]]
        fig = figures.latent_map(
            pca.coords,
            latents["ids"],
            groups,
            "label",
            path=pca.transform(path_codes.numpy()),
            height=420,
        )
        x_title, y_title = pca.axis_titles()
        fig.update_layout(xaxis_title=x_title, yaxis_title=y_title)
        st.plotly_chart(fig, key="interp-map")


along_the_path(a, b, state.kept_value("interp-mode", "lerp"))
mode, sr = state.kept_value("interp-mode", "lerp"), synth.config.sample_rate
path_on_the_map(a, b, mode)

st.subheader("Download a morph")
steps = st.number_input(
    "Steps from A to B (each leg)",
    3,
    64,
    help="clips decoded along the path, crossfaded 50 ms into one WAV",
    **state.kept("interp-steps", 8),
)
via_ids = []
if LISTED:
    via_ids = st.multiselect(
        f"Via (optional): {LISTED}s to pass through on the way from A to B",
        listed_ids,
        key="interp-via",
        help="the morph goes A -> each of these in turn -> B, every leg with the steps above "
        "(e.g. several segments of music)",
    )
made_for = (_identity(a), _identity(b), mode, int(steps), tuple(via_ids))
if st.button("Make the morph", key="interp-morph", icon=":material/graphic_eq:"):
    with st.spinner(f"Decoding {steps} steps per leg..."), widgets.user_errors():
        via_label = st.session_state.get(END_MODEL_LABEL.format(side="a")) if FOREIGN else None
        route = [a, *(_listed_clip(i, via_label) for i in via_ids), b]
        _, morph = synth.morph_path(route, int(steps), mode)
    via = f"-via-{len(via_ids)}" if via_ids else ""
    name = f"morph-{a.name}-to-{b.name}{via}-{mode}-{steps}.wav"
    st.session_state[MORPH] = (name, wav_bytes(morph, sr), len(morph) / sr)
    st.session_state[MORPH_FOR] = made_for
if MORPH in st.session_state and st.session_state.get(MORPH_FOR) == made_for:
    name, data, seconds = st.session_state[MORPH]
    st.audio(data, format="audio/wav")
    st.download_button(
        f"Download {md(name)} ({seconds:.1f} s)",
        data,
        file_name=name,
        mime="audio/wav",
        key="interp-download",
    )
