"""Small Streamlit pieces every page uses: players, downloads and user-facing errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import streamlit as st

from vae.audio import wav_bytes


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
