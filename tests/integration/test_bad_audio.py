"""Bad and unusual audio through the real preprocessing, on both paths (worker processes
and reader threads) and once through the CLI: each bad file is refused with its exact
reason while the good files are kept, each unusual one is accepted and analysed as the same
signal at the target rate would be, and no file lets a NaN into the features.

Single reader errors are in tests/unit/test_audio.py; processes == threads on good files in
tests/unit/test_parallel.py.
"""

from __future__ import annotations

import csv
import os
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vae.audio import features
from vae.audio import io as audio
from vae.audio.features import FeatureConfig
from vae.data import dataset, parallel, reader

CFG = FeatureConfig(sample_rate=8000, clip_samples=4096, n_fft=256, hop_length=128)
PATHS = ("threads", "processes")
ROOT = Path(__file__).resolve().parents[2]


def signal(sr: int, seconds: float = 0.5, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    """A decaying two-partial tone (frames, channels) at any rate: content below 1.4 kHz, so
    it is the same sound at 8 kHz and at 96 kHz. Channel c is scaled by 1 - 0.1 c."""
    t = np.arange(int(seconds * sr)) / sr
    wave = amp * np.exp(-3 * t) * (np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 1320 * t))
    return np.stack([wave * (1 - 0.1 * c) for c in range(channels)], axis=1)


def pcm16_wav(path: Path, sr: int, frames: int, head: np.ndarray | None = None) -> Path:
    """A mono 16-bit WAV of ``frames`` frames written by hand: ``head`` (samples,) at the start,
    the rest a sparse hole of zeros, so a 2-hour file costs no time or disk."""
    data = frames * 2
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        *(b"RIFF", 36 + data, b"WAVE", b"fmt ", 16, 1, 1, sr, sr * 2, 2, 16, b"data", data),
    )
    with path.open("wb") as f:
        f.write(header)
        if head is not None:
            f.write((np.clip(head, -1, 1) * 32767).astype("<i2").tobytes())
        f.truncate(len(header) + data)
    return path


def _write(path: Path, data: np.ndarray, sr: int, subtype: str = "PCM_16", **kw) -> Path:
    sf.write(path, data, sr, subtype=subtype, **kw)
    return path


def _cut(path: Path, keep: float) -> bytes:
    raw = path.read_bytes()
    return raw[: int(len(raw) * keep)]


def _with(sample: int, value: float, channels: int = 1) -> np.ndarray:
    data = signal(8000, channels=channels)
    data[sample, channels - 1] = value
    return data


def write_bad_files(folder: Path) -> dict[str, str]:
    """Write one file of each bad kind into ``folder``; returns {file name: exact reason}."""
    good = _write(folder / "tmp_good.wav", signal(8000), 8000)
    good_bytes = good.read_bytes()
    good.unlink()
    data_at = good_bytes.index(b"data") + 8
    flac, ogg = folder / "tmp.flac", folder / "tmp.ogg"
    _write(flac, signal(8000, 4.0), 8000, format="FLAC")
    _write(ogg, signal(8000, 4.0), 8000, "VORBIS", format="OGG")
    (folder / "truncated.flac").write_bytes(_cut(flac, 0.5))
    (folder / "truncated.ogg").write_bytes(_cut(ogg, 0.5))
    flac.unlink(), ogg.unlink()
    (folder / "empty.wav").write_bytes(b"")
    (folder / "truncated.wav").write_bytes(good_bytes[: data_at + 3000])
    (folder / "header_only.wav").write_bytes(good_bytes[:20])
    (folder / "notes.wav").write_text("this is not audio\n" * 20)
    (folder / "noise.mp3").write_bytes(np.random.default_rng(0).bytes(5000))
    _write(folder / "silent.wav", np.zeros(4000), 8000)
    cancel = signal(8000) * np.array([[1.0]])
    _write(folder / "cancelling.wav", np.concatenate([cancel, -cancel], axis=1), 8000)
    _write(folder / "one_ms.wav", signal(8000, 0.001), 8000)
    _write(folder / "nan.wav", _with(400, np.nan), 8000, "FLOAT")
    _write(folder / "inf.wav", _with(400, np.inf), 8000, "FLOAT")
    _write(folder / "nan_right.wav", _with(80, np.nan, channels=2), 8000, "DOUBLE")
    pcm16_wav(folder / "rate_500.wav", 500, 4000, signal(500, 8.0)[:, 0])
    return {
        "empty.wav": "empty file (0 bytes)",
        "truncated.wav": f"truncated: header declares 8000 bytes of audio, file holds {3000}",
        "header_only.wav": "truncated: no audio data chunk",
        "truncated.flac": "corrupt or truncated (flac decoder lost sync.)",
        "truncated.ogg": "no audio samples (an empty or truncated stream)",
        "notes.wav": "not readable audio (Format not recognised.)",
        "noise.mp3": "not readable audio (Format not recognised.)",
        "silent.wav": "silent (peak below -80 dBFS)",
        "cancelling.wav": "silent after mixing its channels to mono (peak below -80 dBFS)",
        "one_ms.wav": "too short: 1 ms (8 samples at 8000 Hz; clips need at least 10 ms)",
        "nan.wav": "contains NaN samples (1 of 4000, first at 50 ms)",
        "inf.wav": "contains infinite samples (1 of 4000, first at 50 ms)",
        "nan_right.wav": "contains NaN samples (1 of 8000, first at 10 ms)",
        "rate_500.wav": "unsupported sample rate 500 Hz (expected 1000-768000)",
    }


GOOD = [f"good_{k}.wav" for k in range(4)]
TWO_HOURS = 2 * 3600 * 8000  # frames of a 2-hour 8 kHz file: 115 MB of 16-bit samples


def build(src: Path, out: Path, path: str, cfg: FeatureConfig = CFG) -> dataset.SpectrogramSet:
    """Preprocess ``src`` into ``out`` on the named path; returns the loaded dataset."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(parallel, "can_fork", lambda cfg, n: path == "processes")
        dataset.preprocess(src, out, cfg, labels="none", val_fraction=0.2, seed=0)
    return dataset.load_dataset(out)


def errors_of(out: Path) -> dict[str, str]:
    with (out / dataset.ERRORS_FILE).open(newline="") as f:
        return {row["file"]: row["reason"] for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], dict]:
    """A folder mixing every bad kind with four good tones and a 2-hour file that starts with
    a tone, preprocessed on both paths: (src, {bad file: reason}, {path: (dataset, errors)})."""
    root = tmp_path_factory.mktemp("bad")
    src = root / "src"
    src.mkdir()
    reasons = write_bad_files(src)
    for k, name in enumerate(GOOD):
        _write(src / name, signal(8000, 0.3 + 0.1 * k), 8000)
    pcm16_wav(src / "two_hours.wav", 8000, TWO_HOURS, signal(8000)[:, 0])
    built = {p: build(src, root / p, p) for p in PATHS}
    return src, reasons, {p: (ds, errors_of(root / p)) for p, ds in built.items()}


BAD_NAMES = [
    "empty.wav",
    "truncated.wav",
    "header_only.wav",
    "truncated.flac",
    "truncated.ogg",
    "notes.wav",
    "noise.mp3",
    "silent.wav",
    "cancelling.wav",
    "one_ms.wav",
    "nan.wav",
    "inf.wav",
    "nan_right.wav",
    "rate_500.wav",
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_file_is_refused_with_its_reason(mixed, name, path):
    _, reasons, built = mixed
    ds, errors = built[path]
    assert errors[name] == reasons[name]
    assert name not in ds.sources


@pytest.mark.parametrize("path", PATHS)
def test_batch_goes_on_and_no_nan_enters(mixed, path):
    _, reasons, built = mixed
    ds, errors = built[path]
    assert set(errors) == set(BAD_NAMES) == set(reasons)
    assert sorted(ds.sources) == sorted([*GOOD, "two_hours.wav"])
    assert np.isfinite(ds.features.astype(np.float32)).all()
    assert np.isfinite(ds.waveforms).all()
    assert ds.info["counts"]["refused"] == len(BAD_NAMES)


def test_processes_and_threads_refuse_the_same_files_alike(mixed):
    _, _, built = mixed
    (threads, t_errors), (processes, p_errors) = built["threads"], built["processes"]
    assert t_errors == p_errors
    assert threads.ids == processes.ids
    np.testing.assert_allclose(
        threads.waveforms, processes.waveforms, atol=2 / 32768
    )  # int16 steps


@pytest.mark.slow
def test_cli_prints_one_line_per_bad_file(mixed, tmp_path):
    src, reasons, _ = mixed
    out = tmp_path / "cli"
    run = subprocess.run(
        [sys.executable, "-m", "vae", "preprocess", str(src), "--out", str(out)]
        + ["--preset", "fsdd", "--labels", "none"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    for name, reason in reasons.items():
        assert f"skipped {name}: {reason}" in lines
    assert f"kept {len(GOOD) + 1} clips, refused {len(reasons)} files" in run.stdout
    assert errors_of(out) == reasons


# ------------------------------------------------------------------------- hours long


def test_hours_long_file_in_single_mode_reads_only_its_start(mixed, tmp_path):
    src, _, built = mixed
    path = src / "two_hours.wav"
    assert path.stat().st_size == 44 + 2 * TWO_HOURS  # 115 MB, more than one read in memory
    tracemalloc.start()
    try:
        wave, sr = audio.read_audio(path, CFG.sample_rate, **reader.read_limits(CFG))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(wave) == audio.HEAD_SECONDS * sr  # 30 s of the 2 hours
    assert peak < 8 * 2**20  # bytes: the 30 s head, not the 2 hours (460 MB as float32)
    ds, _ = built["processes"]
    row = ds.sources.index("two_hours.wav")
    head = (signal(8000)[:, 0] * 32767).astype("<i2") / np.float32(32768)  # as pcm16_wav wrote it
    want = features.waveform_to_features(reader.shape_clips(head, CFG)[0][1], CFG)
    np.testing.assert_allclose(ds.features[row].astype(np.float32), want.numpy(), atol=2e-3)


@pytest.mark.parametrize("path", PATHS)
def test_hours_long_file_in_chunks_mode_is_refused_from_its_header(tmp_path, path):
    src = tmp_path / "src"
    src.mkdir()
    _write(src / "good.wav", signal(8000), 8000)
    pcm16_wav(src / "two_hours.wav", 8000, TWO_HOURS, signal(8000)[:, 0])
    tracemalloc.start()
    try:
        build(src, tmp_path / "out", path, CFG.replace(segment="chunks"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert errors_of(tmp_path / "out") == {
        "two_hours.wav": "too long: 2 h 00 min (files over 1 h 00 min are refused; "
        "cut it into shorter files)"
    }
    assert peak < 32 * 2**20  # nothing of the file was decoded


# ------------------------------------------------------------------- unusual, accepted

UNUSUAL = {  # name -> (rate, channels, subtype, format)
    "rate_8000.wav": (8000, 1, "PCM_16", "WAV"),
    "rate_11025.wav": (11025, 1, "PCM_16", "WAV"),
    "rate_16000.wav": (16000, 1, "PCM_16", "WAV"),
    "rate_22050.wav": (22050, 1, "PCM_16", "WAV"),
    "rate_44100.wav": (44100, 1, "PCM_16", "WAV"),
    "rate_48000.wav": (48000, 1, "PCM_16", "WAV"),
    "rate_96000.wav": (96000, 1, "PCM_16", "WAV"),
    "rate_8017.wav": (8017, 1, "PCM_16", "WAV"),  # an awkward ratio: see audio._awkward
    "rate_44056.wav": (44056, 1, "PCM_16", "WAV"),
    "bits_u8.wav": (8000, 1, "PCM_U8", "WAV"),
    "bits_24.wav": (8000, 1, "PCM_24", "WAV"),
    "bits_32.wav": (8000, 1, "PCM_32", "WAV"),
    "float.wav": (8000, 1, "FLOAT", "WAV"),
    "double.wav": (8000, 1, "DOUBLE", "WAV"),
    "stereo.wav": (44100, 2, "PCM_16", "WAV"),
    "six_channels.wav": (48000, 6, "PCM_24", "WAV"),
    "flac_24.flac": (44100, 2, "PCM_24", "FLAC"),
    "vorbis.ogg": (22050, 1, "VORBIS", "OGG"),
}
LOUD_FLOAT = {"float_past_full_scale.wav": 40.0, "float_near_max.wav": 3e38}


@pytest.fixture(scope="module")
def unusual(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dataset.SpectrogramSet]:
    """Every unusual kind, preprocessed on both paths: {path: dataset}."""
    root = tmp_path_factory.mktemp("unusual")
    src = root / "src"
    src.mkdir()
    for name, (rate, channels, subtype, fmt) in UNUSUAL.items():
        _write(src / name, signal(rate, channels=channels), rate, subtype, format=fmt)
    for name, amp in LOUD_FLOAT.items():  # both channels: their mean must not overflow
        data = signal(8000, channels=2, amp=1.0) * np.float32(amp)
        _write(src / name, data.astype(np.float32), 8000, "FLOAT")
    return {p: build(src, root / p, p) for p in PATHS}


def _reference() -> np.ndarray:
    """Features (bins, frames) of the signal written at the target rate as float."""
    clip = reader.shape_clips(signal(CFG.sample_rate)[:, 0].astype(np.float32), CFG)[0][1]
    return features.waveform_to_features(clip, CFG).numpy()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", [*UNUSUAL, *LOUD_FLOAT])
def test_unusual_file_is_accepted_as_the_same_signal(unusual, name, path):
    ds = unusual[path]
    assert ds.info["counts"]["refused"] == 0
    got = ds.features[ds.sources.index(name)].astype(np.float32)
    want = _reference()
    assert np.isfinite(got).all()
    error = np.abs(got - want)  # 0.0125 is 1 dB
    loud = want > 0.5  # within 40 dB of full scale: above 8-bit and Vorbis noise floors
    assert error[loud].mean() < 0.01
    if UNUSUAL.get(name, (0, 0, "", ""))[2] in ("VORBIS", "PCM_U8"):  # lossy: loud bins only
        assert error[loud].max() < 0.1
    else:
        assert error[loud].max() < 0.02 and error.mean() < 0.005


def test_thread_reader_never_raises_on_a_vanished_file(tmp_path):
    gone = tmp_path / "gone.wav"
    assert reader.read_file(gone, tmp_path, CFG, "none") == "no such file"


def test_past_min_files_the_process_path_is_taken_and_refuses_alike(mixed, tmp_path, monkeypatch):
    src, reasons, built = mixed
    many = tmp_path / "many"
    many.mkdir()
    for name in reasons:
        os.symlink(src / name, many / name)
    for k in range(parallel.MIN_FILES):
        _write(many / f"pad_{k:03d}.wav", signal(8000, 0.2), 8000)
    if not parallel.can_fork(CFG, parallel.MIN_FILES + len(reasons)):
        pytest.skip("one core or threads alive: the process path is not taken here")
    calls = []
    real = parallel.analyse_files
    monkeypatch.setattr(parallel, "analyse_files", lambda *a, **k: calls.append(1) or real(*a, **k))
    dataset.preprocess(many, tmp_path / "out", CFG, labels="none", val_fraction=0.2, seed=0)
    assert calls and errors_of(tmp_path / "out") == built["threads"][1] == reasons
    assert np.isfinite(np.load(tmp_path / "out" / dataset.FEATURES_FILE).astype(np.float32)).all()


def test_awkward_rate_pairs_resample_by_fft_like_torchaudio(monkeypatch):
    assert audio._awkward(8017, 22050) and not audio._awkward(44100, 22050)
    tone = signal(16000)[:, 0].astype(np.float32)
    want = audio.resample(tone, 16000, 22050)  # torchaudio's sinc kernel
    monkeypatch.setattr(audio, "AWKWARD_TAPS", 0)  # every pair through the FFT
    got = audio.resample(tone, 16000, 22050)
    assert got.shape == want.shape and got.dtype == np.float32
    error = np.abs(got - want)  # the tone peaks at 0.65
    assert error[100:].max() < 1e-3 and error.max() < 3e-3  # the onset: the filters differ
