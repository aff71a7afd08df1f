"""Property tests of the audio reader and the feature round trip on generated files.

Whatever the bytes, ``read_audio`` gives a finite mono float32 wave or an AudioError of one
line naming the file; the preprocessing reader (``reader.read_file``) never raises; and any
audio it accepts becomes features of the fixed shape in [0, 1] that decode to finite sound.
Runs are derandomised (a fixed seed per test) so CI sees the same examples every time.
"""

from __future__ import annotations

import functools
import io
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, event, given, reject, settings
from hypothesis import strategies as st

from vae.audio import features
from vae.audio import io as audio
from vae.audio.features import FeatureConfig
from vae.data import reader

TINY = FeatureConfig(sample_rate=8000, clip_samples=4096, n_fft=256, hop_length=128)
CONFIGS = (TINY, features.get_preset("fsdd"), TINY.replace(segment="chunks", trim_db=30.0))
SUBTYPES = ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")


def stable(n: int):
    """Hypothesis settings for ``n`` examples, the same ones on every run."""
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where each example writes its file (module scope: hypothesis reruns the test body)."""
    return tmp_path_factory.mktemp("hypothesis")


def read_or_refuse(path: Path, rate: int | None = None) -> np.ndarray | None:
    """The reader's contract: a finite mono float32 wave, or None after an AudioError whose
    one line names the file. Any other exception fails the test."""
    try:
        wave, sr = audio.read_audio(path, rate)
    except audio.AudioError as err:
        text = str(err)
        assert text.startswith(f"{path}: ") and "\n" not in text, text
        event(f"refused: {text.removeprefix(f'{path}: ').split(' (')[0].split(':')[0]}")
        return None
    event("read")
    assert wave.dtype == np.float32 and wave.ndim == 1 and len(wave) > 0
    assert np.isfinite(wave).all()
    assert rate is None or sr == rate
    return wave


def round_trip(path: Path, cfg: FeatureConfig) -> None:
    """The preprocessing reader never raises; what it accepts becomes features of the fixed
    shape in [0, 1] that Griffin-Lim turns back into finite sound."""
    result = reader.read_file(path, path.parent, cfg, "none")
    if isinstance(result, str):
        assert result and "\n" not in result
        return
    _, _, clips = result
    waves = audio.peak_normalise(np.stack([c for _, _, c in clips]))  # (clips, clip_samples)
    assert np.isfinite(waves).all() and np.abs(waves).max() <= 1
    feats = features.waveform_to_features(waves, cfg)  # (clips, bins, frames)
    assert feats.shape == (len(clips), *cfg.shape)
    assert bool(feats.isfinite().all()) and 0 <= float(feats.min()) <= float(feats.max()) <= 1
    back = features.features_to_waveform(feats[:2], cfg, n_iter=4)  # (<=2, clip_samples)
    assert back.shape[-1] == cfg.clip_samples and bool(back.isfinite().all())


# ----------------------------------------------------------------- (a) arbitrary bytes


@functools.lru_cache(maxsize=1)
def valid_files() -> dict[str, bytes]:
    """Small valid files of several encodings: the starting points for mutations."""
    t = np.arange(1600) / 8000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    stereo = np.stack([tone, -0.5 * tone], axis=1)
    out = {}
    for name, data, subtype, fmt in [
        ("pcm16.wav", tone, "PCM_16", "WAV"),
        ("stereo24.wav", stereo, "PCM_24", "WAV"),
        ("float.wav", tone, "FLOAT", "WAV"),
        ("u8.wav", tone, "PCM_U8", "WAV"),
        ("clip.flac", stereo, "PCM_16", "FLAC"),
        ("clip.ogg", tone, "VORBIS", "OGG"),
    ]:
        buf = io.BytesIO()
        sf.write(buf, data, 8000, subtype=subtype, format=fmt)
        out[name] = buf.getvalue()
    return out


# RIFF/WAVE header fields (offset, struct format) worth lying in: sizes, tag, channels,
# rate, byte rate, block align, bits, data size.
WAV_FIELDS = [(4, "<I"), (20, "<H"), (22, "<H"), (24, "<I"), (28, "<I"), (32, "<H"), (34, "<H")]
WAV_FIELDS += [(40, "<I")]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid file with header fields rewritten, bytes overwritten, and maybe cut short."""
    name = draw(st.sampled_from(sorted(valid_files())))
    raw = bytearray(valid_files()[name])
    if name.endswith(".wav"):
        for offset, fmt in draw(st.lists(st.sampled_from(WAV_FIELDS), max_size=2)):
            top = 2 ** (8 * struct.calcsize(fmt)) - 1
            value = draw(st.integers(0, top) | st.sampled_from([0, 1, top, 8000, 96000]))
            struct.pack_into(fmt, raw, offset, min(value, top))
    for _ in range(draw(st.sampled_from([0, 0, 1, 2, 5]))):
        at = draw(st.integers(0, len(raw) - 1) | st.integers(0, min(63, len(raw) - 1)))
        raw[at] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(raw))) if draw(st.integers(0, 2)) == 0 else None
    return name, bytes(raw[:cut])


@pytest.mark.slow
@stable(150)
@given(case=mutated())
def test_mutated_files_read_or_are_refused(folder, case):
    name, raw = case
    path = folder / f"mutated_{name}"
    path.write_bytes(raw)
    read_or_refuse(path)
    round_trip(path, TINY)


# Starts of real headers, so that random bytes reach the parsers behind them.
MAGIC = [b"", b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00", b"RIFF\x00\x00\x00\x00WAVE"]
MAGIC += [b"fLaC\x00\x00\x00\x22", b"OggS\x00\x02", b"ID3\x03\x00"]


@stable(100)
@given(
    magic=st.sampled_from(MAGIC),
    raw=st.binary(max_size=3000),
    suffix=st.sampled_from([".wav", ".flac", ".ogg", ".mp3"]),
)
def test_random_bytes_read_or_are_refused(folder, magic, raw, suffix):
    path = folder / f"random{suffix}"
    path.write_bytes(magic + raw)
    read_or_refuse(path, 8000)
    round_trip(path, TINY)


# --------------------------------------------------------------- (b) valid, any audio


@st.composite
def sounds(draw: st.DrawFn) -> tuple[np.ndarray, int, str, str]:
    """(data (frames, channels) float64, rate, subtype, format) of a file soundfile can write."""
    rate = draw(st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000, 96000]))
    rate = draw(st.just(rate) | st.integers(8000, 96000))  # awkward ratios too
    fmt = draw(st.sampled_from(["WAV", "WAV", "WAV", "FLAC", "OGG"]))
    subtype = {"FLAC": "PCM_16", "OGG": "VORBIS"}.get(fmt) or draw(st.sampled_from(SUBTYPES))
    channels = draw(st.integers(1, 6))
    shortest = int(audio.MIN_SECONDS * rate)  # the edge of "too short"
    edges = st.sampled_from([0, 1, shortest - 1, shortest, shortest + 1])
    frames = draw(edges | st.integers(shortest, rate // 2) | st.integers(shortest, rate // 2))
    kind = draw(st.sampled_from(["tone", "noise", "dc", "square", "zeros", "impulse"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    t = np.arange(frames) / rate
    base = {
        "tone": np.sin(2 * np.pi * draw(st.floats(20, rate / 2)) * t),
        "noise": rng.standard_normal(frames),
        "dc": np.ones(frames),
        "square": np.where(np.arange(frames) % 2, 1.0, -1.0),  # full scale at Nyquist
        "zeros": np.zeros(frames),
        "impulse": (np.arange(frames) == frames // 2).astype(float),
    }[kind]
    floats = subtype in ("FLOAT", "DOUBLE")
    amps = [0.0, 1e-6, 1e-4, 0.5, 1.0] + ([1e3, 3e38] if floats else [])
    amp = draw(st.sampled_from(amps) | st.floats(1e-3, 1) | st.floats(1e-3, 1))
    data = np.stack([base * amp * (1 - 0.1 * c) for c in range(channels)], axis=1)
    if floats and frames and draw(st.booleans()):
        data[draw(st.integers(0, frames - 1)), 0] = draw(st.sampled_from([np.nan, np.inf]))
    return data, rate, subtype, fmt


@pytest.mark.slow
@stable(150)
@given(sound=sounds(), cfg=st.sampled_from(CONFIGS))
def test_any_valid_audio_reads_and_round_trips(folder, sound, cfg):
    data, rate, subtype, fmt = sound
    path = folder / f"valid.{fmt.lower()}"
    with np.errstate(over="ignore", invalid="ignore"):  # 3e38 is past float32 max by design
        data = data.astype(np.float32 if subtype == "FLOAT" else np.float64)
    try:
        sf.write(path, data, rate, subtype=subtype, format=fmt)
    except sf.LibsndfileError:
        reject()  # an encoder limit (FLAC at 65,536 Hz), not the reader's business
    same_rate = read_or_refuse(path)
    if same_rate is not None:
        assert np.abs(same_rate).max() <= 1.0
    if fmt != "OGG" and (len(data) < audio.MIN_SECONDS * rate or not np.isfinite(data).all()):
        assert same_rate is None  # too short, empty or non-finite: always refused
    resampled = read_or_refuse(path, cfg.sample_rate)
    assert (resampled is None) == (same_rate is None)
    if resampled is not None:
        assert np.abs(resampled).max() <= 2.0  # sinc resampling may overshoot full scale
    round_trip(path, cfg)
