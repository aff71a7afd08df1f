"""Dataset page: choose where clips come from, tune the features on a preview, preprocess.

Sources land under ``data/sources/`` (uploads, FSDD, the demo set) or stay where they are
(a folder path). What must outlive a page switch (the chosen source, the last import and
preprocess) is kept in session_state keys of this page's own; the feature settings through
``state.kept``, so the fields show what preprocessing will use even after a run stopped
before drawing them (an offline download).
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import pandas as pd
import streamlit as st

from ui import session_files, state
from ui.figures import spectrograms, waveform
from ui.safe_text import code, md
from ui.widgets import USER_ERRORS, play, progress_bar, user_errors, user_message
from vae.audio import features
from vae.audio import io as audio
from vae.audio.features import PRESETS, SETTING_TYPES, SETTINGS
from vae.data import archive, fsdd, reader, sources
from vae.data.dataset import ERRORS_FILE, preprocess
from vae.storage.data_roots import ROOTS_ENV, check_source_folder, data_roots
from vae.storage.output_folder import ExistingDataset, existing_dataset
from vae.workspace import CHECKPOINT_ROOT, DATA_ROOT, folder_name

SOURCES_ROOT = DATA_ROOT / "sources"
SOURCE, IMPORTED = "dataset-source", "dataset-last-import"
SUMMARY = "dataset-last-summary"
# This session's own folders under SOURCES_ROOT ("upload-<8 hex digits>" for its imports,
# "demo-<same hex>" for its demo set): two people never replace, mix or read each other's
# files, and the folders go when the session ends (ui.session_files).
UPLOAD_FOLDER, DEMO_FOLDER = "dataset-upload-folder", "dataset-demo-folder"
UPLOAD_REFUSED = "dataset-upload-refused"  # why the last upload was refused, shown once
PRESET, NAME, LABELS = "dataset-preset", "dataset-name", "dataset-labels"  # widgets' keys
MAX_UPLOAD_MB = st.get_option("server.maxUploadSize")
PRESET_NOTES = {
    "seed": "22,050 Hz, 0.74 s, 512-point FFT: the original notebook's digits setting.",
    "fsdd": "8 kHz speech: every bin meaningful, 75 % overlap for better phase, silence trimmed.",
    "music": "22,050 Hz, 5.94 s segments cut from long files, 1024-point FFT.",
}


def _key(param: str) -> str:
    """The widget key of a feature parameter: ``sample_rate`` -> ``dataset-sample-rate``."""
    return "dataset-" + param.replace("_", "-")


def _preset_values(name: str) -> dict[str, object]:
    """Widget key -> the preset's value of each feature setting, as its widget holds it."""
    cfg = PRESETS[name]
    values = {param: cfg.setting(param) for param in SETTINGS}
    values["clip_seconds"] = round(values["clip_seconds"], 4)
    values["trim_db"] = values["trim_db"] or 0.0  # the field's 0 keeps all
    return {_key(k): SETTING_TYPES[k](v) for k, v in values.items()}


def _feature_widget(where, param: str, default: object) -> None:
    """The field of feature setting ``param``, drawn from its description (its Option in
    vae.audio.features): a selectbox where it offers choices, else a number input."""
    described = SETTINGS[param]
    tip = described.tip or described.help
    if described.choices:
        where.selectbox(described.label, list(described.choices), help=tip,
                        **state.kept(_key(param), default, list(described.choices)))  # fmt: skip
        return
    kind = SETTING_TYPES[param]
    low, high = (None if b is None else kind(b) for b in described.widget_bounds())
    step = None if described.step is None else kind(described.step)
    where.number_input(described.label, low, high, step=step, help=tip,
                       format=described.format, **state.kept(_key(param), default))  # fmt: skip


def _reset_to_preset() -> None:
    """A new preset brings all its values (on_change runs before the widgets are drawn)."""
    for key, value in _preset_values(st.session_state[PRESET]).items():
        state.keep_value(key, value)


def _choose(path: Path) -> None:
    """Make ``path`` the source; the last preprocess's result was another source's."""
    st.session_state[SOURCE] = str(path)
    st.session_state.pop(SUMMARY, None)
    st.session_state[NAME] = path.name


@st.cache_data(show_spinner=False, max_entries=8, ttl=60)  # files added in sub-folders
def _audio_files(folder: str, stamp: int) -> tuple[list[str], list[str]]:
    """(files whose first bytes are audio, files named as audio that are not: empty, text),
    relative to ``folder``: the count and the preview take only the first."""
    found = sources.sort_by_header(sources.find_audio_files(Path(folder)))
    return tuple([p.relative_to(folder).as_posix() for p in part] for part in found)


def _left_out(others: list[str]) -> str:
    """What the source line adds for files left out: "; 2 left out (empty or not audio: ...)"."""
    if not others:
        return ""
    shown = ", ".join(code(name) for name in others[:3])
    more = f" and {len(others) - 3} more" if len(others) > 3 else ""
    return f"; {len(others)} left out (empty or not audio: {shown}{more})"


def _existing(name: str) -> ExistingDataset | None:
    """The dataset that preprocessing under ``name`` would replace (None: none, or a name
    the Preprocess button refuses)."""
    try:
        return existing_dataset(DATA_ROOT / folder_name(name), CHECKPOINT_ROOT)
    except ValueError:
        return None


def _replace_key(name: str) -> str:
    """The "Replace dataset" tick of one name: ticking it for one name allows no other."""
    return f"dataset-replace-{name.strip()}"


def _replace_warning(existing: ExistingDataset, source: Path) -> str:
    """What replacing ``existing`` loses, above the tick that allows it."""
    what = md(existing.describe(source))  # its source path and the names come from disk
    if not existing.checkpoints:
        return f"{what}. Preprocessing replaces it."
    return (
        f"{what}. Preprocessing replaces it, and those checkpoints were trained on it: they "
        "would then point at other data (retrain them, or choose another name)."
    )


def _own_folders() -> list[Path]:
    """This session's private folders under SOURCES_ROOT (named once made up)."""
    names = (st.session_state.get(key) for key in (UPLOAD_FOLDER, DEMO_FOLDER))
    return [SOURCES_ROOT / name for name in names if name]


def _refuse(uploads: list, err: BaseException, target: Path) -> NoReturn:
    """Let the uploads go and show why above an empty uploader, after the rerun that
    draws it (the old one would keep showing files the server no longer holds)."""
    session_files.release(uploads)
    st.session_state[UPLOAD_REFUSED] = user_message(err, target)
    st.rerun()


def _import(uploads: list) -> archive.ImportSummary:
    """Write the uploads into this session's upload folder within the stated sizes, then
    give their memory back: Streamlit would hold their bytes until the session ends."""
    target = SOURCES_ROOT / "upload"
    try:
        session_files.check_upload_size([f.size for f in uploads])
        target = session_files.own_folder(SOURCES_ROOT, "upload", UPLOAD_FOLDER)
        room = session_files.check_import(
            [f.size for f in uploads], SOURCES_ROOT, target, _own_folders()
        )
        with st.spinner("Unpacking the upload..."):
            files = [(f.name, f.getvalue()) for f in uploads]
            done = archive.save_uploads(files, target, archive.Limits(max_total_bytes=room))
    except USER_ERRORS as err:
        _refuse(uploads, err, target)
    session_files.release(uploads)
    return done


# ---------------------------------------------------------------------------- source
session_files.start_sweeper(SOURCES_ROOT)  # once per process: leftovers go at start-up
st.title("Dataset")
st.caption("Choose clips, tune how they become spectrograms, preprocess them into a dataset.")
folder_tab, upload_tab, fsdd_tab, demo_tab = st.tabs(
    ["Folder on disk", "Upload files or a zip", "Download FSDD", "Generate demo set"]
)
with folder_tab:
    folder = st.text_input(
        "Folder of clips",
        key="dataset-folder",
        placeholder="/path/to/clips",
        help="Searched recursively for audio files "
        f"({', '.join(audio.AUDIO_EXTENSIONS)}); sub-folders can be "
        f"the labels. Only folders inside {', '.join(map(str, data_roots()))} "
        f"(`{ROOTS_ENV}`) are read.",
    )
    use_folder = st.button("Use this folder", key="dataset-use-folder")
with upload_tab:
    uploads = st.file_uploader(
        "Audio files, or a zip / tar.gz of them",
        key=session_files.uploader_key(),
        accept_multiple_files=True,
    )
    with user_errors():
        caps = session_files.caps()
    st.caption(
        f"Up to {MAX_UPLOAD_MB} MB per file (`server.maxUploadSize` in "
        f"`.streamlit/config.toml`), {caps.import_bytes // 2**20} MB per import and "
        f"{caps.session_bytes // 2**20} MB stored per session; {archive.Limits().describe()}. "
        "Archives are unpacked safely: entries that would leave the folder, links and "
        "non-audio files are skipped and listed. Your files are yours alone and are removed "
        "when you close the page."
    )
    if refused := st.session_state.pop(UPLOAD_REFUSED, None):
        st.error(md(refused))
    do_import = st.button("Import", key="dataset-import", disabled=not uploads)
with fsdd_tab:
    st.caption(
        "The Free Spoken Digit Dataset v1.0.9 from GitHub: 3,000 recordings of the "
        "digits 0-9 by 6 speakers at 8 kHz (12 MB, checked by SHA-256)."
    )
    do_fsdd = st.button("Download FSDD", key="dataset-fsdd")
with demo_tab:
    st.caption(
        f"Offline synthetic clips: {len(sources.DEMO_CLASSES)} classes "
        f"({', '.join(sources.DEMO_CLASSES)}) in 3 'voices', 8 kHz."
    )
    per_class = st.number_input("Clips per class", 2, 500, 40, key="dataset-demo-n")
    do_demo = st.button("Generate demo set", key="dataset-demo")

with user_errors():
    try:  # past the size, uploads are refused (and let go) as they arrive
        session_files.check_upload_size([f.size for f in uploads or []])
    except ValueError as err:
        _refuse(uploads, err, SOURCES_ROOT)
    if use_folder:
        if not folder.strip():
            raise ValueError("Folder of clips is empty: type the path of a folder of clips")
        path = check_source_folder(folder.strip(), data_roots(), SOURCES_ROOT, _own_folders())
        with st.spinner(f"Looking for audio files in {code(path)}..."):  # a large tree: seconds
            found = sources.find_audio_files(path)
        if not found:
            raise ValueError(f"{path}: no audio files in this folder; choose a folder of clips")
        _choose(path)
    if do_import and uploads:
        done = _import(uploads)
        st.session_state[IMPORTED] = {
            "target": str(done.target),
            "kept": len(done.kept),
            "skipped": list(done.skipped),
        }
        _choose(done.target)
        st.rerun()  # an empty uploader: the uploaded bytes are on disk, not in memory
    if do_fsdd:
        session_files.check_quota(SOURCES_ROOT)
        bar = progress_bar("Downloading FSDD:", 2**20, " MB")
        done, _ = fsdd.fetch_fsdd(SOURCES_ROOT / "fsdd", progress=bar)
        _choose(done.target)
    if do_demo:
        session_files.check_quota(SOURCES_ROOT)
        made = sources.make_demo_set(
            session_files.own_folder(SOURCES_ROOT, "demo", DEMO_FOLDER),
            int(per_class),
            progress=progress_bar("Generating clips:"),
        )
        _choose(made)
        st.session_state[NAME] = "demo"  # not the private folder's name

source = st.session_state.get(SOURCE)
if not source or not Path(source).is_dir():
    st.info("Choose a source of clips above: a folder, an upload, FSDD or the demo set.")
    st.stop()
source = Path(source)
with st.spinner("Reading the first bytes of each audio file..."):  # cached a minute
    files, others = _audio_files(str(source), source.stat().st_mtime_ns)
st.markdown(f"**Source:** {code(source)} ({len(files)} audio files{_left_out(others)})")
imported = st.session_state.get(IMPORTED)
if imported and imported["target"] == str(source) and imported["skipped"]:
    st.warning(
        f"Imported {imported['kept']} files; skipped {len(imported['skipped'])} "
        "(below). Fix or remove them and upload again if they should be in."
    )
    st.dataframe(
        pd.DataFrame(imported["skipped"], columns=["entry", "reason"]),
        key="dataset-skipped",
        hide_index=True,
    )

# ---------------------------------------------------------------------------- features
st.subheader("Features")
preset = st.selectbox(
    "Preset",
    list(PRESETS),
    help="A starting point; changing it resets the values below.",
    **state.kept(PRESET, "fsdd", list(PRESETS), on_change=_reset_to_preset),
)
st.caption(PRESET_NOTES.get(preset, ""))
defaults = _preset_values(preset)
cols = st.columns(4)
numbers = [p for p, d in SETTINGS.items() if not d.choices]  # numbers first, then choices
offered = [p for p, d in SETTINGS.items() if d.choices]
for i, param in enumerate(numbers + offered):
    _feature_widget(cols[i % 4], param, defaults[_key(param)])
cols[len(SETTINGS) % 4].selectbox(
    "Labels",
    sources.LABEL_RULES,
    help="fsdd: {digit}_{speaker}_{i}.wav names; folder: sub-folder names; "
    "none: unlabelled; auto: the first that fits.",
    **state.kept(LABELS, "auto", list(sources.LABEL_RULES)),
)
ss = st.session_state
try:
    values = {param: ss[_key(param)] for param in SETTINGS}
    values["trim_db"] = float(values["trim_db"]) or None  # the field's 0 keeps all
    cfg = PRESETS[ss[PRESET]].overridden(**values)
except ValueError as err:
    st.error(f"Feature settings: {err}. Change that value above, or pick a preset again.")
    st.stop()
st.caption(
    f"Each clip becomes {cfg.n_bins} bins x {cfg.n_frames} frames "
    f"({cfg.clip_seconds:.3f} s at {cfg.sample_rate} Hz)."
)

# ---------------------------------------------------------------------------- preview
st.subheader("Preview")
if not files:
    st.info(f"{code(source)} holds no audio files: choose another source above.")
    st.stop()
if ss.get("dataset-clip") not in files:
    ss["dataset-clip"] = files[0]
clip = st.selectbox("Clip", files, key="dataset-clip")
with user_errors(stop=False):
    _, wave = reader.load_clips(source / clip, cfg)[0]  # (clip_samples,): the first segment
    wave = audio.peak_normalise(wave)
    feats = features.waveform_to_features(wave, cfg).numpy()  # (bins, frames)
    left, right = st.columns([2, 3])
    left.plotly_chart(waveform(wave, cfg.sample_rate), key="dataset-wave-fig")
    right.plotly_chart(spectrograms([(clip, feats)], cfg), key="dataset-spec-fig")
    play(wave, cfg.sample_rate, caption="As it will be stored (trimmed, cut or padded).")

# ---------------------------------------------------------------------------- preprocess
st.subheader("Preprocess")
if NAME not in ss:
    ss[NAME] = source.name
name = st.text_input(
    "Dataset name",
    key=NAME,
    help="A folder under data/; replacing a dataset of the same name asks first.",
)
existing, replace = _existing(name), False
if existing is not None:
    st.warning(_replace_warning(existing, source))
    replace = st.checkbox(f"Replace dataset {code(existing.path.name)}", key=_replace_key(name))
if st.button(
    "Preprocess",
    key="dataset-preprocess",
    type="primary",
    disabled=existing is not None and not replace,
):
    with user_errors(writing=DATA_ROOT / name):
        out = DATA_ROOT / folder_name(name)
        done = preprocess(
            source,
            out,
            cfg,
            labels=ss[LABELS],
            progress=progress_bar("Preprocessing files:"),
            overwrite=replace,  # else a dataset made there since is refused, not replaced
        )
        ss.pop(_replace_key(name), None)  # the next replacement is asked for again
        ss[SUMMARY] = {
            "out": str(out),
            "kept": done.kept,
            "files": done.files,
            "seconds": done.seconds,
            "per_label": done.per_label,
            "refused": len(done.refused),
            "features": f"{cfg.n_bins} x {cfg.n_frames} at {cfg.sample_rate} Hz",
        }
        state.select(state.DATASET, out)
        st.rerun()  # the sidebar lists the new dataset

summary = ss.get(SUMMARY)
if summary:
    out = Path(summary["out"])
    st.success(
        f"Kept {summary['kept']} clips from {summary['files']} files in "
        f"{summary['seconds']:.1f} s -> {code(out)} ({summary.get('features', '')}); "
        "it is now the current dataset "
        "(train it on the **Train** page)."
    )
    if summary["per_label"]:
        per_label = pd.DataFrame(list(summary["per_label"].items()), columns=["label", "clips"])
        st.dataframe(per_label, key="dataset-per-label", hide_index=True)
    errors = out / ERRORS_FILE
    refused = pd.read_csv(errors, dtype=str, keep_default_na=False) if errors.is_file() else None
    if refused is not None and len(refused):
        st.warning(f"{len(refused)} file{'s' * (len(refused) != 1)} refused (not in the dataset):")
        st.dataframe(refused, key="dataset-refused", hide_index=True)
