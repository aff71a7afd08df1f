"""Explore: the checkpoint's latent map; pick a clip to hear and see it against its reconstruction.

Order: title, guard, inputs, work, render (the inputs come after the guard because their
choices come from the checkpoint and its dataset). The map draws from the checkpoint's
latents.npz alone; originals and metrics need the dataset it was trained on, recognised by
its fingerprint (the current dataset, else the one at the path the checkpoint records).
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from ui import cache
from ui.figures import latent_map, spectrograms
from ui.state import remember_selection, require_checkpoint, selected_clips
from ui.widgets import clip_from_upload, play, user_errors
from vae.checkpoints import LATENTS_FILE
from vae.inference import Synthesiser
from vae.metrics import clip_metrics
from vae.projection import METHOD_NAMES, Projection, project

MAP_KEY, CLIP_KEY, UPLOAD_KEY = "explore-map", "explore-clip", "explore-upload"


@st.cache_resource(max_entries=8, show_spinner="Projecting the latent means...")
def _projection(path: str, stamp: float, method: str) -> Projection:
    """One map per checkpoint, latents.npz version (``stamp``) and method: t-SNE takes seconds."""
    return project(cache.latents(path)["means"], method, seed=0)


def _show_pair(name: str, synth: Synthesiser, original: tuple | None, recon: torch.Tensor) -> None:
    """Audio for an original (wave, feats) and its reconstruction (bins, frames), their
    spectrograms on one colour scale with the difference, and the clip's metrics."""
    cfg = synth.config
    recon_wave = synth.to_audio(recon)  # (clip_samples,)
    left, right = st.columns(2)
    with left:
        if original is None:
            st.caption(f"Original of {name}: preprocess the dataset to hear originals.")
        else:
            play(original[0], cfg.sample_rate, f"Original: {name}")
    with right:
        play(recon_wave, cfg.sample_rate, "Reconstruction (decoded posterior mean)")
    if original is None:
        st.plotly_chart(spectrograms([("reconstruction", recon)], cfg), key=f"spec-{name}")
        return
    panels = [("original", original[1]), ("reconstruction", recon)]
    st.plotly_chart(spectrograms(panels, cfg, difference=True), key=f"spec-{name}")
    scores = clip_metrics(original[1], recon, cfg, est_wave=recon_wave)
    sc, lsd = st.columns(2)
    sc.metric(
        "Spectral convergence",
        f"{scores['spectral_convergence']:.3f}",
        help="||original - reconstruction|| / ||original|| of the STFT magnitudes of "
        "what you hear; lower is better",
    )
    lsd.metric(
        "Log-spectral distance",
        f"{scores['log_spectral_distance_db']:.2f} dB",
        help="RMS dB difference per frame, averaged; lower is better",
    )


st.title("Explore")
st.caption(
    "Each point is one clip's posterior mean, flattened to 2-D. Click a point (or pick a "
    "clip) to hear it beside its reconstruction; upload a clip of your own to see where it lands."
)

# ---- guard
ckpt = require_checkpoint()
with user_errors():
    synth = cache.synthesiser(ckpt)
    lat = cache.latents(ckpt)
ds = cache.companion_dataset(ckpt, synth, same_clips=True)
ids = [str(i) for i in lat["ids"]]
names = synth.label_names
labels = [names[i] if 0 <= i < len(names) else "unlabelled" for i in lat["labels"].tolist()]
id_set = set(ids)
if ds is None:
    st.info(
        "The dataset this checkpoint was trained on is not the current one: the map draws "
        "from its latents; preprocess the dataset (and pick it in the sidebar) to hear originals."
    )


def _on_map_select() -> None:
    """Remember the clicked clip; its id rides in ``customdata`` whatever trace it is in."""
    for point in st.session_state[MAP_KEY]["selection"]["points"]:
        clip_id = point.get("customdata")
        clip_id = clip_id[0] if isinstance(clip_id, list) and clip_id else clip_id
        if str(clip_id) in id_set:  # not the uploaded star
            remember_selection(str(clip_id))


def _on_pick() -> None:
    if st.session_state[CLIP_KEY] is not None:
        remember_selection(st.session_state[CLIP_KEY])


# ---- inputs
current = next((c for c in reversed(selected_clips()) if c in id_set), None)
if current is not None and st.session_state.get(CLIP_KEY) != current:
    st.session_state[CLIP_KEY] = current  # a click on the map moves the picker too
controls, upload_col = st.columns([3, 2])
with controls:
    method_col, colour_col = st.columns(2)
    method = method_col.radio(
        "Projection",
        list(METHOD_NAMES),
        format_func=METHOD_NAMES.get,
        horizontal=True,
        key="explore-method",
    )
    has_speakers = ds is not None and any(ds.speakers)  # folder labels name no speakers
    colour = colour_col.radio(
        "Colour by",
        ["label", "speaker"] if has_speakers else ["label"],
        horizontal=True,
        key="explore-colour",
    )
    st.selectbox(
        "Clip",
        ids,
        index=None,
        key=CLIP_KEY,
        on_change=_on_pick,
        placeholder="click a point on the map or pick a clip id",
    )
with upload_col:
    upload = st.file_uploader("Place a clip of your own", key=UPLOAD_KEY)
    upload_label = None
    if synth.conditional:
        upload_label = st.selectbox(
            "Its label (the model is conditional)", names, key="explore-upload-label"
        )

# ---- work
with user_errors():
    stamp = (ckpt / LATENTS_FILE).stat().st_mtime
    proj = _projection(str(ckpt), stamp, method)
groups = ds.speakers if colour == "speaker" and has_speakers else labels
mine = None
if upload is not None:
    with user_errors(stop=False):
        clip = clip_from_upload(synth, upload, upload_label)
        z = synth.encode(clip.features.unsqueeze(0), [clip.label])  # (1, D)
        mine = (clip, z, proj.transform(z.numpy())[0])

# ---- render
chosen = [current] if current else []
extra = [(f"yours: {mine[0].name}", mine[2])] if mine else []
fig = latent_map(proj.coords, ids, groups, colour, selected=chosen, extra=extra)
x_title, y_title = proj.axis_titles()
fig.update_layout(xaxis_title=x_title, yaxis_title=y_title)
st.plotly_chart(fig, key=MAP_KEY, on_select=_on_map_select, selection_mode="points")
if len(selected_clips()) == 2:
    st.caption(
        "Interpolate will morph between your last two picks: " + " and ".join(selected_clips())
    )

if current is not None:
    row = ids.index(current)
    speaker = f", speaker {ds.speakers[row]}" if has_speakers else ""
    st.subheader(f"{current} — {labels[row]}{speaker}")
    label = int(lat["labels"][row])
    with user_errors(stop=False):
        if ds is not None:
            feats = np.asarray(ds.features[row], dtype=np.float32)  # (bins, frames)
            recon = synth.reconstruct(torch.from_numpy(feats).unsqueeze(0), [label])[0]
            _show_pair(current, synth, (ds.waveforms[row], feats), recon)
        else:  # no features on hand: decode the stored mean
            recon = synth.decode(torch.from_numpy(lat["means"][row : row + 1]), [label])[0]
            _show_pair(current, synth, None, recon)

if mine is not None:
    clip, z, _ = mine
    st.subheader(f"Your clip: {upload.name}")
    recon = synth.decode(z, [clip.label])[0]
    _show_pair("upload", synth, (clip.wave, clip.features.numpy()), recon)
