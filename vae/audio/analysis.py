"""Preprocessing's resampling and analysis in numpy alone: the same numbers as torchaudio's
``Resample`` and :func:`vae.audio.features.waveform_to_features`, without importing torch.

Importing torch and torchaudio takes 2.5 s and 600 MB of every process that does; for a
preprocessing run of 30,000 clips that is a third of the time. The worker processes
(``vae.data.parallel``) analyse with these functions, so a preprocessing process imports
numpy and scipy only. Feature types other than STFT bins (mel) still go through torch.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view
from scipy import fft

from vae.audio import io as audio
from vae.audio.features import FeatureConfig

# torchaudio.transforms.Resample's defaults: a Hann-windowed sinc of 6 zero crossings.
LOWPASS_WIDTH, ROLLOFF = 6, 0.99
CHUNK = 8  # clips analysed at once (see linear_features)


@functools.lru_cache(maxsize=16)
def sinc_kernel(orig_sr: int, new_sr: int) -> tuple[np.ndarray, int]:
    """torchaudio's resampling kernel (new / gcd phases, taps) float32 and its width in input
    samples, computed as torchaudio computes it (float64, then float32)."""
    g = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // g, new_sr // g
    base = min(orig, new) * ROLLOFF
    width = math.ceil(LOWPASS_WIDTH * orig / base)
    idx = np.arange(-width, width + orig, dtype=np.float64)[None] / orig
    # torchaudio divides the phases in float32 (integer / integer in torch's default dtype)
    phases = (np.arange(0, -new, -1, dtype=np.float32) / np.float32(new)).astype(np.float64)
    t = (phases[:, None] + idx) * base
    t = np.clip(t, -LOWPASS_WIDTH, LOWPASS_WIDTH)
    window = np.cos(t * math.pi / LOWPASS_WIDTH / 2) ** 2
    t *= math.pi
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = np.where(t == 0, 1.0, np.sin(t) / t)
    return (kernel * window * (base / orig)).astype(np.float32), width


@functools.lru_cache(maxsize=16)
def _kernel_blocks(orig_sr: int, new_sr: int) -> tuple[int, int, list[tuple[int, int, np.ndarray]]]:
    """The kernel cut into blocks of consecutive phases, each with the span of taps where any
    of its phases is non-zero: (first phase, first tap, (taps, phases) matrix). A phase's
    filter is non-zero on 2 x 6 zero crossings only (13 of 174 taps for 8 -> 22.05 kHz), so
    the blocks do a sixth of the dense kernel's multiplications; the taps left out are the
    window's zeros, so the sums are the same."""
    kernel, width = sinc_kernel(orig_sr, new_sr)
    new, taps = kernel.shape
    orig = taps - 2 * width
    per_block = max(1, new // max(1, orig // (2 * width)))  # ~ phases spanning 2 widths
    blocks = []
    for first in range(0, new, per_block):
        rows = kernel[first : first + per_block]
        used = np.flatnonzero(np.abs(rows).max(axis=0) > 0)
        lo, hi = int(used[0]), int(used[-1]) + 1
        blocks.append((first, lo, np.ascontiguousarray(rows[:, lo:hi].T)))
    return orig, width, blocks


def resample(waves: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """torchaudio's ``Resample(orig_sr, new_sr)`` of ``waves`` (batch, samples) float32:
    zero padding, a strided convolution with :func:`sinc_kernel`, ceil(samples * new / orig)
    samples out."""
    waves = np.asarray(waves, np.float32)
    if orig_sr == new_sr:
        return waves
    g = math.gcd(orig_sr, new_sr)
    orig, width, blocks = _kernel_blocks(orig_sr, new_sr)
    new = new_sr // g
    batch, length = waves.shape
    padded = np.zeros((batch, length + 2 * width + orig), np.float32)
    padded[:, width : width + length] = waves
    frames = (padded.shape[1] - (2 * width + orig)) // orig + 1
    out = np.empty((batch, frames, new), np.float32)
    s_b, s_t = padded.strides
    for first, lo, block in blocks:
        view = as_strided(
            padded[:, lo:], (batch, frames, block.shape[0]), (s_b, orig * s_t, s_t), writeable=False
        )
        np.matmul(view, block, out=out[:, :, first : first + block.shape[1]])
    return out.reshape(batch, -1)[:, : -(-length * new_sr // orig_sr)]


@functools.lru_cache(maxsize=8)
def hann_window(n_fft: int) -> np.ndarray:
    """``torch.hann_window(n_fft)`` (periodic) in float32."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def linear_features(waves: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """:func:`vae.audio.features.waveform_to_features` of clips (batch, samples) whose rows
    are STFT bins (``cfg.feature_type.selects_bins``) -> (batch, bins, frames) float16.

    Each clip is peak-normalised by subtracting its peak's dB from the log (the same value
    as dividing first, one pass fewer); the STFT is centred with reflect padding. Clips go
    CHUNK at a time, so the temporaries (frames, spectra: ~100 bytes a sample) stay in the
    caches; at 32 clips a chunk the analysis took 1.5x as long.
    """
    if not cfg.feature_type.selects_bins:
        raise ValueError(f"{cfg.feature_type.name} features need torch: use features.py")
    waves = np.asarray(waves, np.float32)
    out = np.zeros((len(waves), cfg.n_bins, cfg.n_frames), np.float16)
    scratch = Float16Scratch()
    for start in range(0, len(waves), CHUNK):
        chunk = waves[start : start + CHUNK]
        used = _sounding_frames(chunk, cfg)
        if used:  # frames past it stay 0, the feature of silence
            store_float16(
                _features_of(chunk, used, cfg),
                out[start : start + CHUNK, :, :used].transpose(0, 2, 1),
                scratch,
            )
    return out


F16_REBIAS = np.int32(112 << 10)  # exponent bias 127 -> 15, in bits shifted right by 13
HALF_BITS = np.int32(0x3F000000)  # float32 bits of 0.5: its ulp is 2**-24, a float16 subnormal's


class Float16Scratch:
    """Buffers :func:`store_float16` reuses from chunk to chunk: fresh arrays of this size
    come from mmap and cost their page faults each time (a third of the conversion)."""

    def __init__(self) -> None:
        self.bits = np.empty(0, np.int32)
        self.mask = np.empty(0, bool)

    def take(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.bits) < n:
            self.bits, self.mask = np.empty(n, np.int32), np.empty(n, bool)
        return self.bits[:n], self.mask[:n]


def store_float16(x: np.ndarray, out: np.ndarray, scratch: Float16Scratch | None = None) -> None:
    """``out[...] = x`` for float32 ``x`` in [0, 1] into float16 ``out``, bit for bit numpy's
    cast (round half to even) in integer arithmetic: numpy's cast took a third of the STFT
    stage; this takes a quarter of its time.

    Normal halves are the float32 bits rounded at bit 13 and re-biased; values under 2**-14
    (subnormal halves) are rounded to a multiple of 2**-24 by adding 0.5, whose ulp that is.
    Exact zeros, most of a clip's silence, take the fast path; the rare nonzero values under
    2**-14 are fixed one by one.
    """
    x = np.asarray(x, np.float32)  # contiguous is fastest; out may be strided (transposed)
    b = x.view(np.int32)
    flat_r, flat_small = (scratch or Float16Scratch()).take(b.size)
    r, small = flat_r.reshape(x.shape), flat_small.reshape(x.shape)
    np.right_shift(b, 13, out=r)
    r &= 1  # the bit kept: ties round to it even
    r += 0xFFF
    r += b
    r >>= 13
    r -= F16_REBIAS  # the half's bits where x >= 2**-14; below 1024 otherwise
    np.less(r, 1024, out=small)
    if np.count_nonzero(small) > b.size - np.count_nonzero(b):  # nonzero values < 2**-14
        k = np.flatnonzero(small & (b != 0))
        flat_r[k] = (x.reshape(-1)[k] + np.float32(0.5)).view(np.int32) - HALF_BITS
    np.maximum(r, 0, out=r)  # the zeros
    np.copyto(out.view(np.uint16), r, casting="unsafe")


def _sounding_frames(waves: np.ndarray, cfg: FeatureConfig) -> int:
    """How many leading frames of the clips (chunk, samples) hold any sound. Frames past
    every clip's last sample see only the zeros a short clip was padded with (and, reflected
    at the end, more of them): their power is 0 and their features 0, so they are not
    analysed (FSDD's digits fill 45-65 % of a 0.74 s clip)."""
    half = cfg.n_fft // 2
    sounding = np.flatnonzero((waves != 0).any(axis=0))
    if not len(sounding):
        return 0
    last = int(sounding[-1])
    return (
        cfg.n_frames if last >= waves.shape[1] - 1 - half else (last + half) // cfg.hop_length + 1
    )


def reflect_pad(waves: np.ndarray, half: int) -> np.ndarray:
    """``np.pad(waves, ((0, 0), (half, half)), mode="reflect")`` of clips (chunk, samples) in
    three slice copies: np.pad's general code took a fifth of the analysis's own time."""
    n = waves.shape[-1]
    if n < half + 2:  # reflected more than once: np.pad's rule
        return np.pad(waves, ((0, 0), (half, half)), mode="reflect")
    padded = np.empty((len(waves), n + 2 * half), waves.dtype)
    padded[:, half : half + n] = waves
    padded[:, :half] = waves[:, half:0:-1]
    padded[:, half + n :] = waves[:, n - 2 : n - 2 - half : -1]
    return padded


def _features_of(waves: np.ndarray, used: int, cfg: FeatureConfig) -> np.ndarray:
    """(chunk, samples) -> (chunk, used, bins) float32 features of the first ``used``
    frames (:func:`linear_features`), frames first as the rfft leaves them: the store
    transposes them while writing float16 (two transposed float32 copies took 6-10 % more)."""
    half, hop, bins = cfg.n_fft // 2, cfg.hop_length, cfg.n_bins
    window = hann_window(cfg.n_fft)
    padded = reflect_pad(waves, half)
    frames = sliding_window_view(padded, cfg.n_fft, axis=-1)[:, ::hop]  # (chunk, frames, n_fft)
    spec = fft.rfft(frames[:, :used] * window, axis=-1, overwrite_x=True)[..., :bins]
    power = np.square(spec.real)  # (chunk, used, bins): transposed once, by the store
    power += np.square(spec.imag)
    peak = np.maximum(waves.max(axis=-1), -waves.min(axis=-1)).clip(min=1e-12)
    reference = float(window.astype(np.float64).sum()) / 2  # reference_magnitude
    level = (reference * peak.astype(np.float64))[:, None, None]  # full scale of each clip
    np.maximum(power, (1e-24 * level**2).astype(np.float32), out=power)
    db = np.log(power, out=power)  # natural log: numpy's log10 is 5x slower
    db *= np.float32(10 / np.log(10) / cfg.top_db)
    db -= (20 / cfg.top_db * np.log10(level)).astype(np.float32)
    np.clip(db, -1.0, 0.0, out=db)
    db += np.float32(1.0)
    return db


def resample_each(
    waves: list[np.ndarray], orig_sr: int, new_sr: int, keep: int | None = None
) -> list[np.ndarray]:
    """:func:`resample` of waves (samples,) of any lengths, batched: each is zero-padded to
    the longest (zeros past a wave's end are what torchaudio pads with, so its samples do
    not change) and gets its own length back, or its first ``keep`` samples at most (a
    caller that uses only a clip's start then resamples only that much input). Rate pairs
    whose kernel would be huge go through ``io.resample``'s FFT, one wave at a time."""
    if not waves:
        return []
    g = math.gcd(orig_sr, new_sr)
    if (orig_sr // g) * (new_sr // g) > audio.AWKWARD_TAPS:  # a huge kernel: by FFT instead
        return [audio.resample(w, orig_sr, new_sr)[:keep] for w in waves]
    orig, width, _ = _kernel_blocks(orig_sr, new_sr)
    lengths = [len(w) for w in waves]
    if keep is not None:  # input up to the last output frame kept, plus the filter's reach
        lengths = [min(n, (-(-keep // (new_sr // g)) + 1) * orig + width) for n in lengths]
    batch = np.zeros((len(waves), max(lengths)), np.float32)
    for row, wave, n in zip(batch, waves, lengths, strict=True):
        row[:n] = wave[:n]
    out = resample(batch, orig_sr, new_sr)
    sizes = [-(-len(w) * new_sr // orig_sr) for w in waves]  # each wave's whole length
    return [o[: min(s, keep) if keep is not None else s] for o, s in zip(out, sizes, strict=True)]
