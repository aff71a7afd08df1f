"""Audio in and out: every clip enters and leaves the project through this module.

Reading uses soundfile (WAV of any PCM width or float, FLAC, OGG...), mixes to mono and
resamples with torchaudio; writing is atomic (temp file + rename). Problems a file can have
raise :class:`AudioError` whose message names the file and what is wrong with it.
"""

from __future__ import annotations

import functools
import io
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".mp3")
PEAK = 0.99  # target peak of every written or normalised clip: just under full scale
MIN_SECONDS = 0.01  # shorter than this is not a clip, whatever its header says
SILENCE_PEAK = 1e-4  # -80 dBFS: a clip whose loudest sample is below this is silent


class AudioError(ValueError):
    """A file that cannot be used as audio; the message names the file and the reason."""


def _wav_truncation(path: Path) -> str | None:
    """Return a reason if a RIFF/WAVE file declares more audio than it holds, else None.

    libsndfile quietly reads what is there, so a cut-off download would pass unnoticed.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                held = size - pos - 8
                if chunk_size != 0xFFFFFFFF and chunk_size > held:
                    return (
                        f"truncated: header declares {chunk_size} bytes of audio, file holds {held}"
                    )
                return None
            pos += 8 + chunk_size + (chunk_size & 1)
    return "truncated: no audio data chunk"


def read_audio(path: str | Path, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read a file as mono float32, resampled to ``sample_rate`` when given.

    Returns:
        (wave, sr): wave of shape (samples,), values in [-1, 1]; sr the rate of ``wave``.
    Raises:
        AudioError: empty, truncated, unreadable, too short, silent or non-finite audio.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    reason = _wav_truncation(path)
    if reason:
        raise AudioError(f"{path}: {reason}")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (samples, channels)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(f"{path}: not readable audio ({_short(err)})") from None
    if data.shape[0] < MIN_SECONDS * sr:
        raise AudioError(f"{path}: too short ({data.shape[0]} samples at {sr} Hz)")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if np.abs(wave).max() < SILENCE_PEAK:
        mixed = " after mixing its channels to mono" if data.shape[1] > 1 else ""
        raise AudioError(f"{path}: silent{mixed} (peak below -80 dBFS)")
    if sample_rate is not None and sr != sample_rate:
        wave = resample(wave, sr, sample_rate)
        sr = sample_rate
    return np.ascontiguousarray(wave, dtype=np.float32), sr


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text


@functools.lru_cache(maxsize=16)
def _resampler(orig_sr: int, new_sr: int) -> torchaudio.transforms.Resample:
    # Building the sinc kernel costs more than applying it to a short clip: keep one per pair.
    return torchaudio.transforms.Resample(orig_sr, new_sr)


def resample(wave: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Resample ``wave`` of shape (..., samples) from ``orig_sr`` to ``new_sr`` Hz."""
    if orig_sr == new_sr:
        return wave
    with torch.no_grad():
        out = _resampler(int(orig_sr), int(new_sr))(torch.from_numpy(np.asarray(wave, np.float32)))
    return out.numpy()


def peak_normalise(wave: np.ndarray, peak: float = PEAK) -> np.ndarray:
    """Scale so the loudest sample is ``peak``; silence stays silence. Shape (..., samples)."""
    top = np.abs(wave).max(axis=-1, keepdims=True)
    return (wave * (peak / np.maximum(top, 1e-12))).astype(np.float32)


def loud_bounds(wave: np.ndarray, top_db: float, frame: int = 64) -> tuple[int, int]:
    """(start, stop) sample indices of the part louder than ``top_db`` below the peak."""
    if len(wave) == 0:
        return 0, 0
    env = np.abs(wave)
    env = np.pad(env, (0, -len(env) % frame))  # the last partial frame counts too
    frame_peak = env.reshape(-1, frame).max(axis=1)  # (frames,)
    loud = np.flatnonzero(frame_peak >= env.max() * 10 ** (-top_db / 20))
    if len(loud) == 0:
        return 0, len(wave)
    return int(loud[0] * frame), int(min(len(wave), (loud[-1] + 1) * frame))


def trim_silence(wave: np.ndarray, top_db: float, frame: int = 64) -> np.ndarray:
    """Cut leading and trailing stretches quieter than ``top_db`` below the clip's peak."""
    start, stop = loud_bounds(wave, top_db, frame)
    return wave[start:stop]


def fit_length(wave: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad the end so the clip has exactly ``n`` samples."""
    if len(wave) >= n:
        return wave[:n]
    return np.pad(wave, (0, n - len(wave)))


def chunk(wave: np.ndarray, n: int, min_fraction: float = 0.5) -> list[tuple[int, np.ndarray]]:
    """Cut into consecutive ``n``-sample segments; a tail shorter than ``min_fraction`` is dropped.

    Returns:
        [(start_sample, segment of shape (n,)), ...]
    """
    out = []
    for start in range(0, len(wave), n):
        seg = wave[start : start + n]
        if len(seg) < n and start > 0 and len(seg) < min_fraction * n:
            break  # a short tail; a file shorter than one segment still gives one, padded
        out.append((start, fit_length(seg, n)))
    return out


def write_wav(path: str | Path, wave: np.ndarray, sample_rate: int, normalise: bool = True) -> Path:
    """Write a mono 16-bit WAV atomically; peak-normalised unless ``normalise`` is False."""
    from vae.storage import atomic_write_bytes

    return atomic_write_bytes(path, wav_bytes(wave, sample_rate, normalise))


def wav_bytes(wave: np.ndarray, sample_rate: int, normalise: bool = True) -> bytes:
    """Encode a clip as 16-bit WAV bytes (for downloads and players that must not rescale)."""
    wave = np.nan_to_num(np.asarray(wave, np.float32).reshape(-1))
    if normalise:
        wave = peak_normalise(wave)
    buf = io.BytesIO()
    sf.write(buf, np.clip(wave, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def crossfade_concat(clips: list[np.ndarray], fade: int) -> np.ndarray:
    """Join clips end to end, overlapping each pair by ``fade`` samples with a linear crossfade."""
    if not clips:
        return np.zeros(0, np.float32)
    out = np.asarray(clips[0], np.float32)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32) if fade > 0 else None
    for clip in clips[1:]:
        clip = np.asarray(clip, np.float32)
        f = min(fade, len(out), len(clip))
        if f == 0 or ramp is None:
            out = np.concatenate([out, clip])
            continue
        r = ramp if f == fade else np.linspace(0.0, 1.0, f, dtype=np.float32)
        mixed = out[-f:] * (1 - r) + clip[:f] * r
        out = np.concatenate([out[:-f], mixed, clip[f:]])
    return out
