"""RIFF/WAVE chunk headers read by hand: the checks and the fast path of ``vae.audio.io``.

libsndfile reads what a file holds without saying that its header promised more, and sets
itself up for every file; reading the chunk headers here catches a cut-off WAV, and decodes
plain 16-bit PCM (most recordings, all of FSDD) without soundfile.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WavLayout:
    """Where a RIFF/WAVE file keeps its samples, from its chunk headers."""

    format_tag: int
    channels: int
    sample_rate: int
    bits: int
    data_start: int
    data_bytes: int


def wav_layout(raw: bytes, size: int) -> WavLayout | str | None:
    """The layout of a RIFF/WAVE file from its first bytes ``raw`` and its ``size``, a reason
    it is truncated, or None when it is not RIFF/WAVE, has no fmt chunk before its data, or
    its chunk headers lie beyond ``raw`` (then soundfile decides).

    libsndfile quietly reads what is there, so a cut-off download would pass unnoticed.
    """
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        return None
    pos, fmt = 12, None
    while pos + 8 <= size:
        if pos + 8 > len(raw):
            return None
        chunk_id, chunk_size = struct.unpack_from("<4sI", raw, pos)
        if chunk_id == b"fmt " and chunk_size >= 16 and pos + 24 <= size:
            fmt = struct.unpack_from("<HHIIHH", raw, pos + 8)  # tag, ch, rate, _, _, bits
        if chunk_id == b"data":
            held = size - pos - 8
            if chunk_size != 0xFFFFFFFF and chunk_size > held:
                return f"truncated: header declares {chunk_size} bytes of audio, file holds {held}"
            if fmt is None:
                return None
            tag, channels, rate, _, _, bits = fmt
            return WavLayout(tag, channels, rate, bits, pos + 8, min(chunk_size, held))
        pos += 8 + chunk_size + (chunk_size & 1)
    return "truncated: no audio data chunk"


def plain_pcm16(raw: bytes, layout: WavLayout, frames: int) -> np.ndarray | None:
    """(frames, channels) float32 of a plain 16-bit PCM WAV, decoded as libsndfile does
    (x / 32768), or None for any other encoding. Reading FSDD this way, without soundfile's
    per-file set-up, cut the cost of reading a file by two thirds."""
    if layout.format_tag != 1 or layout.bits != 16 or not 0 < layout.channels <= 64:
        return None
    ints = np.frombuffer(raw, "<i2", frames * layout.channels, layout.data_start)
    return (ints.astype(np.float32) / 32768.0).reshape(frames, layout.channels)
