"""Small Streamlit pieces every page uses: players, downloads and user-facing errors."""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from vae.audio import wav_bytes
from vae.inference import Clip, Synthesiser


def play(wave: np.ndarray, sample_rate: int, caption: str | None = None) -> None:
    """An audio player for a waveform (samples,), as the WAV bytes a download would hold."""
    if caption:
        st.caption(caption)
    st.audio(wav_bytes(np.asarray(wave, dtype=np.float32), sample_rate), format="audio/wav")


def download_wav(wave: np.ndarray, sample_rate: int, file_name: str, label: str, key: str) -> None:
    """A download button for a waveform (samples,) as a 16-bit WAV."""
    data = wav_bytes(np.asarray(wave, dtype=np.float32), sample_rate)
    st.download_button(label, data, file_name=file_name, mime="audio/wav", key=key)


@contextlib.contextmanager
def user_errors(stop: bool = True) -> Iterator[None]:
    """Show what a user can get wrong (ValueError and OSError) as ``st.error``, not a
    traceback; the project's errors already name the file and the fix."""
    try:
        yield
    except (ValueError, OSError) as err:
        st.error(str(err))
        if stop:
            st.stop()


def clip_from_upload(
    synth: Synthesiser, upload: UploadedFile, label: str | None = None, name: str | None = None
) -> Clip:
    """An uploaded audio file (or an ``st.audio_input`` recording, WAV at the browser's rate)
    as a clip the checkpoint takes, called ``name`` or the file's stem (read through a temp
    file, since the audio reader wants a path with the right suffix)."""
    suffix = Path(upload.name).suffix.lower() or ".wav"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(upload.getvalue())
        try:
            clip = synth.clip_from_file(path, label)
        except (ValueError, OSError) as err:  # name the upload, not our temp file
            message = str(err).replace(str(path), upload.name)
            raise ValueError(f"{message}; upload a WAV, FLAC or OGG file") from None
    return dataclasses.replace(clip, name=name or Path(upload.name).stem)


def progress_bar(text: str, scale: float = 1.0, unit: str = "") -> Callable[[int, int], None]:
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
