"""Audio in and out: every clip enters and leaves the project through this module.

Reading uses soundfile (WAV of any PCM width or float, FLAC, OGG...), decodes block by block
into mono, and resamples with torchaudio (awkward rate pairs by FFT); memory is bounded by
what the caller keeps (``head_seconds``, ``max_seconds``), not by the file. Writing is
atomic (temp file + rename). Problems a file can have raise :class:`AudioError` whose one
line names the file and what is wrong with it.
"""

from __future__ import annotations

import functools
import io
import math
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from vae.audio.wav_header import plain_pcm16, wav_layout
from vae.storage.files import atomic_write_bytes

if TYPE_CHECKING:  # imported where used: preprocessing's workers resample without torch
    import torchaudio

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".mp3")
PEAK = 0.99  # target peak of every written or normalised clip: just under full scale
MIN_SECONDS = 0.01  # shorter than this is not a clip, whatever its header says
# Files up to this size are read in one go and decoded from memory (no second open); larger
# ones stream through soundfile, their header checked from the first HEADER_BYTES.
WHOLE_FILE_BYTES, HEADER_BYTES = 32 * 2**20, 2**16
SILENCE_PEAK = 1e-4  # -80 dBFS: a clip whose loudest sample is below this is silent
MIN_RATE, MAX_RATE = 1000, 768_000  # outside these a header is broken, not unusual
HEAD_SECONDS = 30.0  # what a one-clip-per-file reader decodes of a longer file
MAX_SECONDS = 3600.0  # whole-file readers (chunks mode) refuse longer files: memory grows
BLOCK_FRAMES = 2**18  # decoded at a time; a short file is one block
# A header declaring more frames than this per byte of file is not trusted to size the array
# the samples are decoded into (lossless codecs pack a few samples a byte; silence far more).
PLAUSIBLE_FRAMES_PER_BYTE = 8
AWKWARD_TAPS = 2**20  # rate pairs past this resample by FFT (see _awkward)
LONG_SAMPLES = 2**22  # longer mono waves resample a window at a time (_resample_windows)


class AudioError(ValueError):
    """A file that cannot be used as audio; the message names the file and the reason."""


def _duration(seconds: float) -> str:
    """A length as people say it: "1 ms", "2.5 s", "2 h 05 min"."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    hours, minutes = divmod(int(seconds // 60), 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {int(seconds % 60):02d} s"


def _check_header(path: Path, sr: int, frames: int, max_seconds: float | None) -> None:
    """Refuse, before decoding anything, rates no recorder makes and files over the limit."""
    if not MIN_RATE <= sr <= MAX_RATE:
        raise AudioError(
            f"{path}: unsupported sample rate {sr} Hz (expected {MIN_RATE}-{MAX_RATE})"
        )
    if max_seconds is not None and frames > max_seconds * sr:
        raise AudioError(
            f"{path}: too long: {_duration(frames / sr)} (files over {_duration(max_seconds)} "
            "are refused; cut it into shorter files)"
        )


@dataclass
class _Decoded:
    """Mono samples of the part of a file that is used, and what its channels held."""

    wave: np.ndarray  # (frames,) float32, channels averaged in float64 (no overflow)
    sr: int
    channels: int
    nan: int = 0
    inf: int = 0
    first_bad: int = -1  # frame of the first non-finite sample
    head: bool = False  # True when the file has more than was read

    def add(self, data: np.ndarray, at: int) -> np.ndarray:
        """Count the non-finite samples of a (frames, channels) block at frame ``at``;
        returns the block mixed to mono."""
        bad = ~np.isfinite(data)
        if bad.any():
            self.nan += int(np.isnan(data).sum())
            self.inf += int(bad.sum()) - int(np.isnan(data).sum())
            if self.first_bad < 0:
                self.first_bad = at + int(np.flatnonzero(bad.any(axis=1))[0])
        return data[:, 0] if data.shape[1] == 1 else self.mix(data)

    @staticmethod
    def mix(data: np.ndarray) -> np.ndarray:
        """(frames, channels) -> (frames,): the channels' mean, summed in float64."""
        return data.mean(axis=1, dtype=np.float64).astype(np.float32)


def _read_blocks(
    path: Path, f: sf.SoundFile, keep: int, max_seconds: float | None, size: int
) -> _Decoded:
    """Decode at most ``keep`` frames (-1: all) block by block, mixing each to mono: memory
    grows with the frames kept, never with channels or with what a header claims.

    The blocks go into one array sized from the header, so a long file is held once rather
    than twice (blocks, then the joined copy); a header claiming more samples than ``size``
    bytes could plausibly hold is not trusted, and blocks past the declared length are kept
    aside and joined at the end.
    """
    out = _Decoded(np.zeros(0, np.float32), f.samplerate, f.channels)
    declared = f.frames if keep < 0 else min(keep, f.frames)
    buf = np.empty(declared if 0 < declared <= PLAUSIBLE_FRAMES_PER_BYTE * size else 0, np.float32)
    parts, filled, done = [], 0, 0
    limit = None if max_seconds is None else int(max_seconds * f.samplerate)
    while keep < 0 or done < keep:
        n = BLOCK_FRAMES if keep < 0 else min(BLOCK_FRAMES, keep - done)
        try:
            block = f.read(n, dtype="float32", always_2d=True)  # (n, channels)
        except (sf.LibsndfileError, RuntimeError, ValueError) as err:
            raise AudioError(f"{path}: corrupt or truncated ({_short(err)})") from None
        if len(block) == 0:
            break
        mono = out.add(block, done)
        if not parts and filled + len(mono) <= len(buf):
            buf[filled : filled + len(mono)] = mono
            filled += len(mono)
        else:
            parts.append(mono)
        done += len(block)
        if limit is not None and done > limit:  # a header that under-declares its length
            _check_header(path, f.samplerate, done, max_seconds)
    out.head = keep >= 0 and done == keep and f.frames > keep
    held = buf[:filled] if filled == len(buf) else buf[:filled].copy()  # a short stream
    out.wave = np.concatenate([held, *parts]) if parts else held
    return out


def _read_raw(path: Path) -> tuple[bytes, int]:
    """(bytes, size) of ``path``: all of it up to WHOLE_FILE_BYTES, else its first
    HEADER_BYTES. One open and one fstat: a stat, a second stat and a buffered open per file
    cost more than reading a short clip."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        raise AudioError(f"{path}: no such file") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise AudioError(f"{path}: no such file")
        if st.st_size == 0:
            raise AudioError(f"{path}: empty file (0 bytes)")
        want = st.st_size if st.st_size <= WHOLE_FILE_BYTES else HEADER_BYTES
        parts, got = [], 0
        while got < want:  # os.read may return less than asked
            part = os.read(fd, want - got)
            if not part:
                break
            parts.append(part)
            got += len(part)
    finally:
        os.close(fd)
    return (parts[0] if len(parts) == 1 else b"".join(parts)), st.st_size


def _decode(
    path: Path, raw: bytes, size: int, head_seconds: float | None, max_seconds: float | None
) -> _Decoded:
    """The samples of ``path`` to use, from its bytes ``raw`` (:func:`_read_raw`): all, or
    its first ``head_seconds``."""
    whole = size <= WHOLE_FILE_BYTES
    layout = wav_layout(raw, size)
    if isinstance(layout, str):
        raise AudioError(f"{path}: {layout}")
    if whole and layout is not None and layout.format_tag == 1 and layout.bits == 16:
        frames = layout.data_bytes // (2 * max(layout.channels, 1))
        _check_header(path, layout.sample_rate, frames, max_seconds)
        keep = (
            frames if head_seconds is None else min(frames, int(head_seconds * layout.sample_rate))
        )
        data = plain_pcm16(raw, layout, keep)
        if data is not None:  # integers: always finite, so no check for NaN
            mono = data[:, 0] if layout.channels == 1 else _Decoded.mix(data)
            return _Decoded(mono, layout.sample_rate, layout.channels, head=keep < frames)
    try:
        f = sf.SoundFile(io.BytesIO(raw) if whole else str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(f"{path}: not readable audio ({_short(err)})") from None
    with f:
        _check_header(path, f.samplerate, f.frames, max_seconds)
        keep = -1 if head_seconds is None else int(head_seconds * f.samplerate)
        return _read_blocks(path, f, keep, max_seconds, size)


def read_audio(
    path: str | Path,
    sample_rate: int | None = None,
    head_seconds: float | None = None,
    max_seconds: float | None = None,
    times: dict[str, float] | None = None,
) -> tuple[np.ndarray, int]:
    """Read a file as mono float32, resampled to ``sample_rate`` when given.

    Args:
        head_seconds: read only the file's start (a one-clip-per-file caller needs no more,
            and an hours-long file then costs no more than a short one).
        max_seconds: refuse longer files, from the header, before decoding them.
        times: seconds spent are added to its "read" (the bytes), "decode" (samples and
            checks) and "resample" entries: what bounds a preprocessing run.
    Returns:
        (wave, sr): wave of shape (samples,), peak at most 1 (louder float files are scaled
        down); sr the rate of ``wave``.
    Raises:
        AudioError: empty, truncated, unreadable, too short, too long, silent or non-finite
        audio, or a sample rate outside MIN_RATE..MAX_RATE.
    """
    path = Path(path)
    started = time.perf_counter()
    raw, size = _read_raw(path)
    bytes_read = time.perf_counter()
    got = _decode(path, raw, size, head_seconds, max_seconds)
    wave, sr = got.wave, got.sr
    if len(wave) == 0:
        raise AudioError(f"{path}: no audio samples (an empty or truncated stream)")
    if len(wave) < MIN_SECONDS * sr:
        raise AudioError(
            f"{path}: too short: {_duration(len(wave) / sr)} ({len(wave)} samples at {sr} Hz; "
            f"clips need at least {_duration(MIN_SECONDS)})"
        )
    if got.nan or got.inf:
        kinds = " and ".join(k for k, n in (("NaN", got.nan), ("infinite", got.inf)) if n)
        raise AudioError(
            f"{path}: contains {kinds} samples ({got.nan + got.inf} of "
            f"{len(wave) * got.channels}, first at {_duration(got.first_bad / sr)})"
        )
    peak = max(float(wave.max()), -float(wave.min()))  # np.abs would copy an hour of audio
    if peak < SILENCE_PEAK:
        mixed = " after mixing its channels to mono" if got.channels > 1 else ""
        read = f" in its first {_duration(len(wave) / sr)}" if got.head else ""
        raise AudioError(f"{path}: silent{mixed}{read} (peak below -80 dBFS)")
    if peak > 1:  # float files may exceed full scale; keep the promise of [-1, 1]
        wave = wave / np.float32(peak)
    decoded = time.perf_counter()
    if sample_rate is not None and sr != sample_rate:
        wave = resample(wave, sr, sample_rate)
        sr = sample_rate
    if times is not None:
        times["read"] = times.get("read", 0.0) + bytes_read - started
        times["decode"] = times.get("decode", 0.0) + decoded - bytes_read
        times["resample"] = times.get("resample", 0.0) + time.perf_counter() - decoded
    return np.ascontiguousarray(wave, dtype=np.float32), sr


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    if text.startswith("Error opening"):
        text = text.split(": ", 1)[-1]
    return text.removeprefix("Error : ")


@functools.lru_cache(maxsize=16)
def _resampler(orig_sr: int, new_sr: int) -> torchaudio.transforms.Resample:
    # Building the sinc kernel costs more than applying it to a short clip: keep one per pair.
    import torchaudio

    return torchaudio.transforms.Resample(orig_sr, new_sr)


def _awkward(orig_sr: int, new_sr: int) -> bool:
    """True for a rate pair whose torchaudio kernel would be huge: it holds one filter per
    output phase, (new / gcd) x (orig / gcd) taps; 8017 -> 22050 Hz took 8.8 GB and 17 s."""
    g = math.gcd(int(orig_sr), int(new_sr))
    return (int(orig_sr) // g) * (int(new_sr) // g) > AWKWARD_TAPS


def _resample_fft(wave: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Band-limited resampling by the FFT: time and memory grow with the clip, not with the
    ratio. Zero padding past the end keeps the end from wrapping onto the start; padding to
    whole periods of the ratio keeps the rate exact (a rounded length drifts in phase)."""
    from scipy.fft import irfft, rfft  # scipy comes with scikit-learn

    n = wave.shape[-1]
    out_n = -(-n * new_sr // orig_sr)  # the length torchaudio gives
    g = math.gcd(orig_sr, new_sr)
    periods = -(-(n + 64 + n // 8) // (orig_sr // g))
    padded, scaled = periods * (orig_sr // g), periods * (new_sr // g)
    spec = rfft(np.asarray(wave, np.float32), padded, axis=-1)  # (..., padded // 2 + 1)
    bins = min(spec.shape[-1], scaled // 2 + 1)
    out = irfft(spec[..., :bins], scaled, axis=-1) * (scaled / padded)  # (..., scaled)
    return out[..., :out_n].astype(np.float32)


def resample(wave: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Resample ``wave`` of shape (..., samples) from ``orig_sr`` to ``new_sr`` Hz
    (awkward rate pairs through :func:`_resample_fft`, long mono waves window by window)."""
    if orig_sr == new_sr:
        return wave
    if _awkward(orig_sr, new_sr):
        return _resample_fft(wave, int(orig_sr), int(new_sr))
    if wave.ndim == 1 and len(wave) > LONG_SAMPLES:
        return _resample_windows(wave, int(orig_sr), int(new_sr))
    import torch

    with torch.no_grad():
        out = _resampler(int(orig_sr), int(new_sr))(torch.from_numpy(np.asarray(wave, np.float32)))
    return out.numpy()


def _resample_windows(
    wave: np.ndarray, orig_sr: int, new_sr: int, window: int = LONG_SAMPLES
) -> np.ndarray:
    """:func:`resample` of a long wave (samples,) a window at a time: the same output (up to
    float rounding), but torchaudio's padded copy and its (phases, frames) output are a
    window's, not the whole file's four copies of it.

    Windows start on the resampler's period (a multiple of ``orig_sr / gcd`` input samples,
    ``new_sr / gcd`` output samples) and read past both ends by more than the filter.
    """
    import torch

    g = math.gcd(orig_sr, new_sr)
    step, out_step = orig_sr // g, new_sr // g
    margin = -(-(_resampler(orig_sr, new_sr).width + step) // step) * step
    size = max(step, window // step * step)
    total = -(-len(wave) * new_sr // orig_sr)  # the length a whole-wave call gives
    out = np.empty(total, np.float32)
    for start in range(0, len(wave), size):
        lo, hi = max(0, start - margin), min(len(wave), start + size + margin)
        with torch.no_grad():
            part = _resampler(orig_sr, new_sr)(
                torch.from_numpy(np.asarray(wave[lo:hi], np.float32))
            )
        skip, at = (start - lo) // step * out_step, start // step * out_step
        count = min(size // step * out_step, total - at)
        out[at : at + count] = part[skip : skip + count].numpy()
    return out


def resample_many(waves: list[np.ndarray], orig_sr: int, new_sr: int) -> list[np.ndarray]:
    """Resample several waves (samples,) with one convolution: the same output as
    :func:`resample` on each, at a fraction of the per-call cost for short clips.

    The waves are laid end to end with zero gaps wider than the filter, each starting on
    the resampler's period (a multiple of ``orig_sr / gcd``), so each lands on whole output
    samples and no filter tap reaches a neighbour.
    """
    if orig_sr == new_sr or len(waves) < 2 or _awkward(orig_sr, new_sr):
        return [resample(w, orig_sr, new_sr) for w in waves]
    step = int(orig_sr) // math.gcd(int(orig_sr), int(new_sr))  # input period of the phases
    out_step = int(new_sr) // math.gcd(int(orig_sr), int(new_sr))
    gap = -(-(2 * _resampler(int(orig_sr), int(new_sr)).width + step) // step) * step
    starts, pos = [], 0
    for w in waves:
        starts.append(pos)
        pos += -(-(len(w) + gap) // step) * step  # next start: past the gap, on the period
    line = np.zeros(pos, np.float32)
    for start, w in zip(starts, waves, strict=True):
        line[start : start + len(w)] = w
    joined = resample(line, orig_sr, new_sr)  # (pos * new / orig,)
    return [
        joined[s // step * out_step : s // step * out_step + -(-len(w) * new_sr // orig_sr)]
        for s, w in zip(starts, waves, strict=True)
    ]


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
    out = np.zeros(n, wave.dtype)  # np.pad's set-up cost more than the copy
    out[: len(wave)] = wave
    return out


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


class CrossfadeWriter:
    """:func:`crossfade_concat` into a 16-bit WAV as the clips come, holding one clip (a
    morph of any length in flat memory); renamed into place by :meth:`close`. Not
    normalised: a crossfade of peak-normalised clips never exceeds their peak."""

    def __init__(self, path: str | Path, sample_rate: int, fade: int) -> None:
        self.path, self.fade, self._tail = Path(path), fade, None
        self._tmp = self.path.with_name(
            f".{self.path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
        )
        self._file = sf.SoundFile(self._tmp, "w", sample_rate, 1, "PCM_16", format="WAV")

    def add(self, clip: np.ndarray) -> None:
        """Append one clip (samples,), overlapping the previous one by ``fade`` samples."""
        clip = np.nan_to_num(np.asarray(clip, np.float32).reshape(-1))
        f = 0 if self._tail is None else min(self.fade, len(self._tail), len(clip))
        if self._tail is not None:
            self._file.write(np.clip(self._tail[: len(self._tail) - f], -1.0, 1.0))
        if f:
            r = np.linspace(0.0, 1.0, f, dtype=np.float32)
            clip = np.concatenate([self._tail[-f:] * (1 - r) + clip[:f] * r, clip[f:]])
        self._tail = clip

    def close(self, keep: bool = True) -> None:
        """Write the last clip's end and put the file in place (``keep`` False: drop it)."""
        if keep and self._tail is not None:
            self._file.write(np.clip(self._tail, -1.0, 1.0))
        self._file.close()
        if keep:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)
