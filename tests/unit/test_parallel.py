"""The fast preprocessing path: worker processes, batched resampling, in-place rows, the
framed STFT and the plain-PCM reader all give what the simple path gives."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vae.audio import features
from vae.audio import io as audio
from vae.audio.features import FeatureConfig
from vae.data import dataset, parallel
from vae.storage import files as storage

CFG = FeatureConfig(sample_rate=8000, clip_samples=4096, n_fft=256, hop_length=128)


def _build(src: Path, out: Path, processes: bool, monkeypatch) -> dataset.SpectrogramSet:
    monkeypatch.setattr(parallel, "can_fork", lambda cfg, n: processes)
    dataset.preprocess(src, out, CFG, val_fraction=0.2, seed=0)
    return dataset.load_dataset(out)


def test_processes_and_threads_build_the_same_dataset(
    demo_set_dir, write_tone, tmp_path, monkeypatch
):
    src = tmp_path / "src"
    shutil.copytree(demo_set_dir, src)
    for k in range(40):  # past MIN_FILES, at rates that need resampling, plus bad files
        write_tone(
            src / "tone" / f"extra_{k}.wav",
            seconds=0.3 + k / 100,
            sample_rate=22050,
            freq=200.0 + 10 * k,
        )
    (src / "tone" / "empty.wav").write_bytes(b"")
    (src / "noise" / "text.wav").write_text("not audio")
    threads = _build(src, tmp_path / "threads", False, monkeypatch)
    processes = _build(src, tmp_path / "processes", True, monkeypatch)
    assert len(processes) == len(threads) == 70
    assert processes.ids == threads.ids and processes.labels == threads.labels
    assert processes.starts.tolist() == threads.starts.tolist()
    np.testing.assert_allclose(
        processes.waveforms, threads.waveforms, atol=2 / 32768
    )  # int16 steps
    np.testing.assert_allclose(
        processes.features.astype(np.float32), threads.features.astype(np.float32), atol=2e-3
    )
    refused = (tmp_path / "processes" / "errors.csv").read_text()
    assert "tone/empty.wav,empty file (0 bytes)" in refused and "noise/text.wav" in refused
    assert processes.fingerprint == threads.fingerprint


def test_can_fork_only_for_single_clips_from_a_single_threaded_process():
    many = parallel.MIN_FILES
    # Other tests may leave a daemon thread alive (the app's session sweeper): then no fork.
    alone = threading.active_count() == 1
    assert parallel.can_fork(CFG, many) == (parallel.workers() > 1 and alone)
    assert not parallel.can_fork(CFG, many - 1)
    assert not parallel.can_fork(CFG.replace(segment="chunks"), many)


def test_resample_many_equals_resampling_each(tmp_path):
    rng = np.random.default_rng(0)
    for orig, new in [(8000, 22050), (44100, 22050), (48000, 8000), (16000, 22050)]:
        waves = [rng.standard_normal(n).astype(np.float32) for n in (100, 1234, 5000, 777)]
        joined = audio.resample_many(waves, orig, new)
        for wave, got in zip(waves, joined, strict=True):
            want = audio.resample(wave, orig, new)
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, atol=1e-6)


def test_npy_rows_fill_in_any_order_and_drop_rows(tmp_path):
    rows = storage.NpyRows(tmp_path / "a.npy", np.float16, (2, 3), 5)
    rows.write(3, np.full((2, 2, 3), 3.0))
    rows.write(0, np.ones((1, 2, 3)))
    array = np.load(tmp_path / "a.npy")
    assert array.shape == (5, 2, 3) and array.dtype == np.float16
    assert array[:, 0, 0].tolist() == [1.0, 0.0, 0.0, 3.0, 3.0]
    storage.keep_npy_rows(tmp_path / "a.npy", np.array([0, 4]))
    assert np.load(tmp_path / "a.npy")[:, 0, 0].tolist() == [1.0, 3.0]
    with pytest.raises(ValueError, match="rows of shape"):
        rows.write(0, np.ones((1, 3, 2)))


@pytest.mark.parametrize(
    "subtype,channels", [("PCM_16", 1), ("PCM_16", 2), ("PCM_24", 1), ("FLOAT", 2), ("PCM_U8", 1)]
)
def test_wav_reader_matches_soundfile(write_tone, tmp_path, subtype, channels):
    path = write_tone(tmp_path / "t.wav", channels=channels, subtype=subtype)
    wave, sr = audio.read_audio(path)
    want, want_sr = sf.read(path, dtype="float32", always_2d=True)
    assert sr == want_sr
    np.testing.assert_array_equal(wave, want.mean(axis=1) if channels > 1 else want[:, 0])


def test_large_files_stream_and_still_catch_truncation(write_tone, tmp_path, monkeypatch):
    monkeypatch.setattr(audio, "WHOLE_FILE_BYTES", 1000)  # every file counts as large
    path = write_tone(tmp_path / "t.wav", seconds=0.5)
    wave, _ = audio.read_audio(path)
    np.testing.assert_array_equal(wave, sf.read(path, dtype="float32")[0])
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(audio.AudioError, match="truncated: header declares"):
        audio.read_audio(path)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["seed", "fsdd", "music"])
def test_framed_stft_equals_torch_stft(preset):
    cfg = features.get_preset(preset)
    x = torch.randn(2, 3, cfg.clip_samples)
    want = torch.stft(
        x.reshape(6, -1),
        cfg.n_fft,
        cfg.hop_length,
        window=torch.hann_window(cfg.n_fft),
        center=True,
        return_complex=True,
    ).reshape(2, 3, cfg.n_stft_bins, -1)
    torch.testing.assert_close(features.stft_magnitude(x, cfg), want.abs())
    torch.testing.assert_close(features.stft_power(x, cfg), want.abs() ** 2, rtol=1e-4, atol=1e-3)
    via_power = features.power_to_features(features.stft_power(x, cfg), cfg)
    via_magnitude = features.magnitude_to_features(want.abs(), cfg)
    torch.testing.assert_close(via_power, via_magnitude, atol=1e-5, rtol=0)
