"""Small Streamlit pieces every page uses: players, downloads and user-facing errors."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx
from streamlit.runtime.uploaded_file_manager import UploadedFile

from ui import session_files
from ui.safe_text import md
from vae.audio.io import wav_bytes
from vae.data.sources import label_from_name
from vae.progress import Progress
from vae.storage.files import DiskFullError, disk_full_cause, raise_if_disk_full
from vae.synthesis.inference import Clip, Synthesiser

T = TypeVar("T")


def play(wave: np.ndarray, sample_rate: int, caption: str | None = None) -> None:
    """An audio player for a waveform (samples,), as the WAV bytes a download would hold;
    ``caption`` is plain text (it may name a clip or a file: shown escaped)."""
    if caption:
        st.caption(md(caption))
    st.audio(wav_bytes(np.asarray(wave, dtype=np.float32), sample_rate), format="audio/wav")


def download_wav(wave: np.ndarray, sample_rate: int, file_name: str, label: str, key: str) -> None:
    """A download button for a waveform (samples,) as a 16-bit WAV."""
    data = wav_bytes(np.asarray(wave, dtype=np.float32), sample_rate)
    st.download_button(label, data, file_name=file_name, mime="audio/wav", key=key)


# What a user or a file from elsewhere can get wrong, shown in one line rather than a
# traceback: the project's errors (``vae.model.checkpoints.CheckpointError`` and the other
# ValueErrors) name the file and the fix; OSError and MemoryError are the last resort.
USER_ERRORS = (ValueError, OSError, MemoryError)


def mount_of(path: str | Path) -> Path:
    """The mount point holding ``path`` (the disk to free space on)."""
    here = Path(os.path.abspath(path))
    while not os.path.ismount(here) and here != here.parent:
        here = here.parent
    return here


def user_message(err: BaseException, writing: str | Path | None = None) -> str:
    """One line for ``err``: a full disk names the file and the disk to free space on
    (``writing`` when the error does not name a file), memory says what to do."""
    if isinstance(err, MemoryError):
        return (
            f"not enough memory for this{f' ({writing})' if writing else ''}; a file this "
            "large or a size this big is not one of ours: use a checkpoint made by this tool"
        )
    cause = disk_full_cause(err)
    if cause is None:
        return str(err)
    file = getattr(err, "filename", None) or cause.filename or writing or "a file"
    text = str(err) if isinstance(err, DiskFullError) else ""
    if not text.startswith("no space left writing"):
        why = os.strerror(cause.errno) if cause.errno else str(cause)
        text = f"no space left writing {file} ({why}); free some space and try again"
    return text.replace("free some space and", f"free some space on {mount_of(file)} and")


@contextlib.contextmanager
def user_errors(stop: bool = True, writing: str | Path | None = None) -> Iterator[None]:
    """Show what a user or a hostile file can get wrong (``USER_ERRORS``) as one
    ``st.error`` line, not a traceback; ``writing`` names the file a full disk stopped."""
    try:
        yield
    except USER_ERRORS as err:
        st.error(md(user_message(err, writing)))  # it may quote a file's or a visitor's text
        if stop:
            st.stop()


def clip_from_upload(
    synth: Synthesiser, upload: UploadedFile, label: str | None = None, name: str | None = None
) -> Clip:
    """An uploaded audio file (or an ``st.audio_input`` recording, WAV at the browser's rate)
    as a clip the checkpoint takes, called ``name`` or the file's stem (read through a temp
    file, since the audio reader wants a path with the right suffix)."""
    session_files.start_sweeper()  # the upload's bytes are given back when the session ends
    suffix = Path(upload.name).suffix.lower() or ".wav"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        try:
            path.write_bytes(upload.getvalue())
        except OSError as err:  # a full disk: name the upload and where its copy went
            raise_if_disk_full(err, f"{path} (a copy of {upload.name})")
            raise
        try:
            clip = synth.clip_from_file(path, label)
        except (ValueError, OSError) as err:  # name the upload, not our temp file
            message = str(err).replace(str(path), upload.name)
            raise ValueError(f"{message}; upload a WAV, FLAC or OGG file") from None
    return dataclasses.replace(clip, name=name or Path(upload.name).stem)


def label_from_upload(
    upload: UploadedFile | None, label_names: Sequence[str], widget_key: str
) -> str | None:
    """Point the label box ``widget_key`` at the label the upload's name gives (FSDD's
    ``3_george_1.mp3`` is a "3"), once per new file so that the user can still change it.
    Call before drawing the box.

    Returns:
        The label the name gives, or None (no upload, or a name no label rule reads).
    """
    if upload is None:
        return None
    named = label_from_name(upload.name, label_names)
    seen, this = f"{widget_key}-named-for", (upload.name, upload.size)
    if named is not None and st.session_state.get(seen) != this:
        st.session_state[widget_key] = named
    st.session_state[seen] = this
    return named


# What a conditional model's label box is for (issue 24, item 10): said beside the box and
# again under a clip whose label no name gave, which therefore went in as the default.
LABEL_WHY = "The model is conditional: it encodes a clip together with its label"


def label_note(label: str, named: str | None, file_name: str, what: str = "clip") -> str:
    """Which label a clip of the user's own (``what``: "clip" or "recording") was encoded
    with and why it needs one (as Markdown: the label and the file's name are escaped)."""
    if label == named:
        return md(
            f"Encoded and reconstructed as label {label!r} (read from the name {file_name}; "
            "change it above)."
        )
    return md(
        f"Encoded and reconstructed as label {label!r}. {LABEL_WHY}; choose which label this "
        f"{what} is in the box above (until you do, it is {label!r})."
    )


def progress_bar(text: str, scale: float = 1.0, unit: str = "") -> Progress:
    """A progress(done, total) callback drawing an st.progress bar (redrawn once per %);
    ``scale`` and ``unit`` show amounts such as bytes as "1.5 of 12.0 MB"."""
    bar, shown = st.progress(0.0, text), [-1]

    def update(done: int, total: int) -> None:
        pct = int(100 * done / total) if total else 0
        if pct != shown[0]:
            shown[0] = pct
            amount = (
                f"{done / scale:.1f} of {total / scale:.1f}" if scale != 1 else f"{done}/{total}"
            )
            bar.progress(min(pct, 100) / 100, f"{text} {amount}{unit}")

    return update


def timed(work: Callable[[], T], text: str, expected_s: float, quiet_s: float = 0.5) -> T:
    """Run ``work``, which reports no progress of its own (sklearn's t-SNE), while a bar fills
    against the time it is expected to take: a long first wait is not a bare spinner.

    The work runs in a worker thread that draws nothing; this script thread draws the bar.
    A call done within ``quiet_s`` (a cache hit) shows nothing. Errors are raised here.
    """
    done: dict[str, object] = {}

    def run() -> None:
        try:
            done["value"] = work()
        except BaseException as err:  # noqa: BLE001 - raised again in the script thread
            done["error"] = err

    worker = threading.Thread(target=run, daemon=True)
    add_script_run_ctx(worker)  # a cached function called in it looks for the session
    worker.start()
    worker.join(quiet_s)
    if worker.is_alive():
        bar, start = st.progress(0.0, text), time.monotonic() - quiet_s
        while worker.is_alive():
            worker.join(0.25)
            elapsed = time.monotonic() - start
            note = f"{text} {elapsed:.0f} s of about {expected_s:.0f} s"
            bar.progress(min(elapsed / expected_s, 0.99), note)
        bar.empty()
    if "error" in done:
        raise done["error"]  # type: ignore[misc]
    return done["value"]  # type: ignore[return-value]
