"""Explore: the checkpoint's latent map; pick a clip to hear and see it against its reconstruction.

A clip of the user's own (uploaded or recorded in the browser) lands on the map as a star
and can be sent to Interpolate as A or B. Clicks on the map also build a route: the morph
through its points in order (``Synthesiser.morph_path``, the CLI's ``interpolate A B C...``)
plays and downloads as one WAV.

Order: title, guard, inputs, work, render (the inputs come after the guard because their
choices come from the checkpoint and its dataset). The map draws from the checkpoint's
latents.npz alone; originals and metrics need the dataset it was trained on, recognised by
its fingerprint (the current dataset, else the one at the path the checkpoint records).
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch
from plotly.colors import qualitative

from ui import cache, sound_pad
from ui.figures import latent_map, spectrograms
from ui.safe_text import md
from ui.state import hand_over, kept, remember_selection, require_checkpoint, selected_clips
from ui.widgets import (
    LABEL_WHY,
    clip_from_upload,
    download_wav,
    label_from_upload,
    label_note,
    play,
    timed,
    user_errors,
)
from vae.audio.io import wav_bytes
from vae.audio.metrics import clip_metrics
from vae.data.dataset import CONFIG_FILE as DATASET_CONFIG
from vae.model.checkpoints import LATENTS_FILE
from vae.synthesis.inference import Clip, Synthesiser
from vae.synthesis.projection import METHOD_NAMES, Projection, cached_project

MAP_KEY, CLIP_KEY, UPLOAD_KEY = "explore-map", "explore-clip", "explore-upload"
RECORD_KEY = "explore-record"
YOURS = "yours: "  # map names of the user's own clips start with this
ROUTE = "explore-route"  # names of the points clicked on the map, in order
ROUTE_MORPH = "explore-route-wav"  # ((route, steps), WAV bytes, seconds) of the last one
ROUTE_FILE = "route-morph.wav"
PAD_XY = "explore-pad-xy"  # where the sound pad's point was let go, on the PCA plane


# t-SNE of the 3,000 FSDD codes: 9.0 s quiet, 15.8 to 17.6 s beside other work on a 2-core
# machine (issue 26); the bar's estimate is the busy figure, so it seldom waits at 99 %.
TSNE_SECONDS_PER_CLIP = 16 / 3000


@st.cache_resource(max_entries=8, show_spinner=False)
def _projection(path: str, stamp: float, method: str) -> Projection:
    """One map per checkpoint, latents.npz version (``stamp``) and method, shared by every
    session; a t-SNE map is also kept on disk by its latents (after a restart: no refit)."""
    return cached_project(cache.latents(path)["means"], method, seed=0)


def _map_of(method: str, stamp: float) -> Projection:
    """The map by ``method``; the first t-SNE of a checkpoint fills a bar against its expected
    time (sklearn reports no progress), later ones come from the cache at once."""
    if method == "pca":
        return _projection(str(ckpt), stamp, method)
    expected = max(2.0, TSNE_SECONDS_PER_CLIP * len(ids))
    text = f"t-SNE of {len(ids):,} codes, once per checkpoint (then kept):"
    return timed(lambda: _projection(str(ckpt), stamp, method), text, expected)


def _pair_sound(
    synth: Synthesiser, original: tuple | None, recon: torch.Tensor
) -> tuple[np.ndarray, np.ndarray, dict | None]:
    """The reconstruction (bins, frames) as numpy, its waveform and, with an original
    (wave, feats), the clip's metrics: the work of showing a pair, done once per clip."""
    recon_wave = synth.to_audio(recon)  # (clip_samples,)
    scores = None
    if original is not None:
        scores = clip_metrics(original[1], recon, synth.config, est_wave=recon_wave)
    return (*cache.frozen(recon, recon_wave), scores)


def _show_pair(
    name: str, synth: Synthesiser, original: tuple | None, made: tuple[np.ndarray, ...]
) -> None:
    """Audio for an original (wave, feats) and its reconstruction, their spectrograms on one
    colour scale with the difference, and the clip's metrics; ``made`` is ``_pair_sound``'s."""
    cfg = synth.config
    recon, recon_wave, scores = made
    left, right = st.columns(2)
    with left:
        if original is None:
            st.caption(f"Original of {md(name)}: preprocess the dataset to hear originals.")
        else:
            play(original[0], cfg.sample_rate, f"Original: {name}")
    with right:
        play(recon_wave, cfg.sample_rate, "Reconstruction (decoded posterior mean)")
    if original is None:
        st.plotly_chart(spectrograms([("reconstruction", recon)], cfg), key=f"explore-spec-{name}")
        return
    panels = [("original", original[1]), ("reconstruction", recon)]
    st.plotly_chart(spectrograms(panels, cfg, difference=True), key=f"explore-spec-{name}")
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
    "clip) to hear it beside its reconstruction; upload or record a clip of your own to see "
    "where it lands. Your clicks also draw a route: hear the morph along it."
)

# ---- guard
ckpt = require_checkpoint()
with user_errors():  # every read of the checkpoint's files: one line, no traceback
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
    """Remember the clicked clip and add it to the route; its id rides in ``customdata``
    whatever trace it is in (a star of your own is a route point, not a dataset pick)."""
    route = list(st.session_state.get(ROUTE, []))
    for point in st.session_state[MAP_KEY]["selection"]["points"]:
        clip_id = point.get("customdata")
        clip_id = str(clip_id[0] if isinstance(clip_id, list) and clip_id else clip_id)
        if clip_id in id_set:
            remember_selection(clip_id)
        if (clip_id in id_set or clip_id.startswith(YOURS)) and route[-1:] != [clip_id]:
            route.append(clip_id)
    st.session_state[ROUTE] = route


def _pop_route() -> None:
    st.session_state[ROUTE] = st.session_state.get(ROUTE, [])[:-1]


def _clear_route() -> None:
    st.session_state[ROUTE] = []


def _on_pick() -> None:
    if st.session_state[CLIP_KEY] is not None:
        remember_selection(st.session_state[CLIP_KEY])


def _route_panel(route: list[str], own: dict[str, Clip]) -> None:
    """The route's points, its buttons, and with 2+ points its morph as one WAV; ``own``
    are your clips on the map by name, the other points are clip ids."""
    st.subheader("Route")
    st.caption("Route: " + " → ".join(f"{i}. {md(p)}" for i, p in enumerate(route, 1)))
    pop, clear, _ = st.columns([1, 1, 3])
    pop.button("Remove last point", key="explore-route-pop", on_click=_pop_route)
    clear.button("Clear route", key="explore-route-clear", on_click=_clear_route)
    if len(route) < 2:
        st.caption("Click more points to morph along a route through them.")
        return
    steps = st.columns(3)[0].slider(
        "Steps per leg", 2, 12, 4, key="explore-route-steps", help="clips decoded on each leg"
    )
    made_for = (tuple(route), steps)
    if st.button("Morph along the route", key="explore-route-morph", icon=":material/route:"):
        with st.spinner(f"Decoding {len(route) - 1} legs..."), user_errors():
            clips = [own[p] if p in own else cache.clip(ckpt, synth, ds, p) for p in route]
            _, morph = synth.morph_path(clips, steps)  # (samples,)
        sr = synth.config.sample_rate
        st.session_state[ROUTE_MORPH] = (made_for, wav_bytes(morph, sr), len(morph) / sr)
    made = st.session_state.get(ROUTE_MORPH)
    if made is not None and made[0] == made_for:  # a stale morph is not offered
        st.audio(made[1], format="audio/wav")
        st.download_button(
            f"Download {ROUTE_FILE} ({made[2]:.1f} s)",
            made[1],
            file_name=ROUTE_FILE,
            mime="audio/wav",
            key="explore-route-download",
        )


def _route_xy(name: str, proj: Projection, mine: dict) -> np.ndarray:
    return mine[name][4] if name in mine else proj.coords[ids.index(name)]


def _play_the_map(pca: Projection, point_labels: np.ndarray) -> None:
    """The sound pad over the map's PCA plane: drag a point and hear the code under it; where
    the hand lets go, the server's sound and a download of it."""
    st.subheader("Play the map")
    if not sound_pad.toggle(synth):
        return
    label = -1
    if synth.conditional:
        label = names.index(
            st.selectbox("Say", names, **kept("explore-pad-label", names[0], names))
        )
    st.caption(
        "Drag over the plane of the first two principal axes (the PCA map): each point is the "
        "code centre + x PC1 + y PC2, decoded and made into sound in this browser as you move."
    )
    x, y = st.session_state.get(PAD_XY, (0.0, 0.0))
    with user_errors(stop=False):
        moved = sound_pad.pad(
            synth,
            ckpt,
            centre=pca.centre,
            axes=pca.axes,
            points=pca.coords,
            point_labels=point_labels,
            palette=list(qualitative.Plotly),
            axis_names=["PC1", "PC2"],
            position=(x, y),
            label=label,
            revision=0,  # only the hand moves it
            key="explore-pad",
        )
        if moved is not None:
            st.session_state[PAD_XY] = (x, y) = moved
        code = pca.centre + x * pca.axes[0] + y * pca.axes[1]  # (D,)
        feats = synth.decode(torch.from_numpy(code[None].astype(np.float32)), [label])[0]
        wave = synth.to_audio(feats)
        name = f"map-pc1-{x:+.2f}-pc2-{y:+.2f}"
        play(wave, synth.config.sample_rate, f"At PC1 {x:+.2f}, PC2 {y:+.2f}")
        said = f" --label {names[label]}" if synth.conditional else ""
        z_text = ",".join(f"{v:.4f}" for v in code)
        st.code(f"python -m vae decode {ckpt} --z {z_text}{said} --out {name}.wav", "bash")
        download_wav(
            wave,
            synth.config.sample_rate,
            f"{name}.wav",
            "Download this point",
            key="explore-pad-download",
        )


# ---- inputs
controls, upload_col = st.columns([3, 2])
with controls:
    method_col, colour_col = st.columns(2)
    method = method_col.radio(
        "Projection",
        list(METHOD_NAMES),
        format_func=METHOD_NAMES.get,
        horizontal=True,
        **kept("explore-method", "pca", list(METHOD_NAMES)),
    )
    has_speakers = ds is not None and any(ds.speakers)  # folder labels name no speakers
    colourings = ["label", "speaker"] if has_speakers else ["label"]
    by_speaker = synth.conditional and has_speakers  # by label: one cloud, see below
    colour = colour_col.radio(
        "Colour by",
        colourings,
        horizontal=True,
        **kept("explore-colour", colourings[by_speaker], colourings),
    )
    if synth.conditional and colour == "label":
        colour_col.caption(
            "A conditional model is given the label, so its code leaves the label out: "
            "coloured by label the map is one even cloud"
            + (", by speaker it shows what the code holds." if has_speakers else ".")
        )
with upload_col:
    upload = st.file_uploader("Place a clip of your own", key=UPLOAD_KEY)
    # the browser's own rate: the audio reader resamples recordings as it does uploads
    recording = st.audio_input("...or record one", key=RECORD_KEY, sample_rate=None)
    upload_label = named = None
    if synth.conditional:
        named = label_from_upload(upload, names, "explore-upload-label")
        upload_label = st.selectbox(
            "Its label (the model is conditional)",
            names,
            key="explore-upload-label",
            help=f"{LABEL_WHY}: choose which label your clip or recording is",
        )

# ---- work
with user_errors():
    stamp = (ckpt / LATENTS_FILE).stat().st_mtime
    proj = _map_of(method, stamp)
groups = ds.speakers if colour == "speaker" and has_speakers else labels
mine = {}  # map name -> (key, heading, clip, code (1, D), map point (2,)): your own clips
for key, file, heading in (
    ("upload", upload, f"Your clip: {upload.name}" if upload else ""),
    ("recording", recording, "Your recording"),
):
    if file is not None:
        # a compressed upload can take seconds to decode; the spinner shows after 0.5 s
        with user_errors(stop=False), st.spinner(f"Reading and encoding {md(heading.lower())}..."):
            clip = clip_from_upload(synth, file, upload_label, None if key == "upload" else key)
            z = synth.encode(clip.features.unsqueeze(0), [clip.label])  # (1, D)
            mine[YOURS + clip.name] = (key, heading, clip, z, proj.transform(z.numpy())[0])


def _pair(row: int) -> tuple[np.ndarray, np.ndarray, dict | None]:
    """``_pair_sound`` of the clip in ``row``: its features encoded and decoded when the
    dataset is here, else its stored mean decoded."""
    label = int(lat["labels"][row])
    if ds is None:  # no features on hand: decode the stored mean
        recon = synth.decode(torch.from_numpy(lat["means"][row : row + 1]), [label])[0]
        return _pair_sound(synth, None, recon)
    feats = np.asarray(ds.features[row], dtype=np.float32)  # (bins, frames)
    recon = synth.reconstruct(torch.from_numpy(feats).unsqueeze(0), [label])[0]
    return _pair_sound(synth, (ds.waveforms[row], feats), recon)


@st.fragment(key="explore-picks")
def picks(proj: Projection, groups: list, mine: dict) -> None:
    """The clip picker, the map, the route and the picked clip against its reconstruction:
    a click on the map or a pick reruns only this part (the projection and your own clips
    above and below are kept), and a clip's reconstruction is made once (``cache.sound``)."""
    current = next((c for c in reversed(selected_clips()) if c in id_set), None)
    if current is not None and st.session_state.get(CLIP_KEY) != current:
        st.session_state[CLIP_KEY] = current  # a click on the map moves the picker too
    st.columns([3, 2])[0].selectbox(
        "Clip",
        ids,
        index=None,
        key=CLIP_KEY,
        on_change=_on_pick,
        placeholder="click a point on the map or pick a clip id",
    )
    # a route point whose clip is gone (an upload removed) leaves the route
    route = [p for p in st.session_state.get(ROUTE, []) if p in id_set or p in mine]
    st.session_state[ROUTE] = route

    # The map is drawn last into its place: the picked clip's sound and picture reach the
    # browser before the 3,000 points, whose redraw is most of what a click costs there.
    map_place = st.empty()
    if len(selected_clips()) == 2:
        st.caption(
            "Interpolate will morph between your last two picks: "
            + " and ".join(md(c) for c in selected_clips())
        )
    if route:
        _route_panel(route, {name: own[2] for name, own in mine.items()})

    if current is not None:
        row = ids.index(current)
        speaker = f", speaker {ds.speakers[row]}" if has_speakers else ""
        st.subheader(md(f"{current} — {labels[row]}{speaker}"))
        with user_errors(stop=False):
            original, dataset = None, None
            if ds is not None:
                feats = np.asarray(ds.features[row], dtype=np.float32)  # (bins, frames)
                original = (ds.waveforms[row], feats)
                dataset = (str(ds.root), (ds.root / DATASET_CONFIG).stat().st_mtime)
            made = cache.sound(ckpt, "explore-pair", (dataset, current), lambda: _pair(row))
            _show_pair(current, synth, original, made)

    chosen = [current] if current else []
    extra = [(name, own[4]) for name, own in mine.items()]
    path = np.array([_route_xy(p, proj, mine) for p in route]) if route else None  # (K, 2)
    fig = latent_map(
        proj.coords, ids, groups, colour, selected=chosen, extra=extra, path=path, route=route
    )
    x_title, y_title = proj.axis_titles()
    fig.update_layout(xaxis_title=x_title, yaxis_title=y_title)
    map_place.plotly_chart(fig, key=MAP_KEY, on_select=_on_map_select, selection_mode="points")


# ---- render
picks(proj, groups, mine)

for key, heading, clip, z, _ in mine.values():
    st.subheader(md(heading))
    if synth.conditional:
        from_name = named if key == "upload" else None
        what = "clip" if key == "upload" else "recording"
        st.caption(label_note(names[clip.label], from_name, upload.name if upload else "", what))
    recon = synth.decode(z, [clip.label])[0]
    original = (clip.wave, clip.features.numpy())
    _show_pair(key, synth, original, _pair_sound(synth, original, recon))
    from_col, to_col, _ = st.columns([1, 1, 3])
    for column, side, text in ((from_col, "a", "Morph from this"), (to_col, "b", "Morph to this")):
        if column.button(text, key=f"explore-{key}-to-{side}", icon=":material/linear_scale:"):
            hand_over(side, clip)  # Interpolate takes it as A or B
            st.switch_page("app_pages/interpolate.py")

if sound_pad.in_a_browser():  # AppTest has no page to play in
    with user_errors(stop=False):
        pca = proj if method == "pca" else _map_of("pca", stamp)
        _play_the_map(pca, lat["labels"])
