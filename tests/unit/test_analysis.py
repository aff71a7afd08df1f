"""Preprocessing without torch (issue 26): numpy resampling and analysis give torchaudio's and
``features.waveform_to_features``' numbers, waveforms are stored as int16 and read back as
float32, datasets made before (float32 waveforms) still load, and a preprocessing process
that forks its workers never imports torch."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vae.audio import analysis, features
from vae.audio import io as audio
from vae.audio.features import FeatureConfig
from vae.data import dataset, parallel, reader, sources, waves

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def dataset_copy(tmp_path: Path, demo_dataset_dir: Path) -> Path:
    return Path(shutil.copytree(demo_dataset_dir, tmp_path / "ds"))


@pytest.mark.parametrize("orig,new", [(8000, 22050), (44100, 22050), (48000, 8000), (16000, 22050)])
def test_numpy_resampling_equals_torchaudio(orig, new):
    rng = np.random.default_rng(0)
    clips = [rng.uniform(-1, 1, n).astype(np.float32) for n in (100, 1234, 5000, 777)]
    for clip, got in zip(clips, analysis.resample_each(clips, orig, new), strict=True):
        want = audio.resample(clip, orig, new)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-6)
    # only the start asked for: the same samples, from less input
    for clip, got in zip(clips, analysis.resample_each(clips, orig, new, keep=300), strict=True):
        want = audio.resample(clip, orig, new)[:300]
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_an_awkward_rate_pair_resamples_by_fft():
    clip = np.random.default_rng(1).uniform(-1, 1, 4000).astype(np.float32)
    (got,) = analysis.resample_each([clip], 8017, 22050)
    np.testing.assert_array_equal(got, audio.resample(clip, 8017, 22050))


@pytest.mark.parametrize("preset", ["seed", "fsdd"])
def test_numpy_features_equal_torch_features(preset):
    cfg = features.get_preset(preset)
    rng = np.random.default_rng(2)
    clips = np.zeros((11, cfg.clip_samples), np.float32)
    for k, length in enumerate([100, 2000, cfg.clip_samples // 2, cfg.clip_samples - 200]):
        clips[k, :length] = rng.normal(0, 0.2, length)  # short clips, zero-padded
    clips[5:10] = rng.normal(0, 0.01, (5, cfg.clip_samples))  # full length, quiet
    # clips[10] stays silent
    want = features.waveform_to_features(clips, cfg).numpy()
    got = analysis.linear_features(clips, cfg)
    assert got.dtype == np.float16 and got.shape == want.shape
    np.testing.assert_allclose(got.astype(np.float32), want, atol=5e-4)  # float16's step
    assert not got[10].any()


def test_mel_features_are_refused_without_torch():
    with pytest.raises(ValueError, match="need torch"):
        analysis.linear_features(np.zeros((1, 4096), np.float32), FeatureConfig(n_mels=64))


def test_int16_round_trip_within_one_step():
    clip = np.random.default_rng(3).uniform(-1, 1, 5000).astype(np.float32)
    stored = waves.to_int16(clip)
    assert stored.dtype == np.int16
    back = waves.Waveforms(stored[None])[0]
    assert back.dtype == np.float32
    assert np.abs(back - clip).max() <= 1 / 32768
    scaled = waves.to_int16(clip, peak=audio.PEAK)
    np.testing.assert_allclose(
        waves.Waveforms(scaled[None])[0], audio.peak_normalise(clip), atol=1 / 32768
    )


def test_new_dataset_stores_int16_and_reads_float32_within_one_step(
    demo_dataset_dir, demo_set_dir, tiny_feature_config
):
    assert np.load(demo_dataset_dir / "waveforms.npy", mmap_mode="r").dtype == np.int16
    ds = dataset.load_dataset(demo_dataset_dir)
    assert ds.waveforms.dtype == np.float32 and ds.waveforms.shape == (30, 4096)
    for i in (0, 13, 29):
        ((_, clip),) = reader.load_clips(demo_set_dir / ds.sources[i], tiny_feature_config)
        got = ds.waveforms[i]
        assert got.dtype == np.float32 and np.abs(got).max() <= 1.0
        assert np.abs(got - audio.peak_normalise(clip)).max() <= 1 / 32768
    rows = ds.waveforms[[2, 5]]
    assert rows.shape == (2, 4096) and rows.dtype == np.float32


def test_a_dataset_with_float32_waveforms_still_loads(dataset_copy: Path):
    ds = dataset.load_dataset(dataset_copy)
    old = np.asarray(ds.waveforms, dtype=np.float32)  # as datasets before issue 26 stored them
    np.save(dataset_copy / "waveforms.npy", old)
    again = dataset.load_dataset(dataset_copy)
    assert again.waveforms.stored.dtype == np.float32
    np.testing.assert_array_equal(again.waveforms[3], old[3])
    np.testing.assert_array_equal(np.asarray(again.waveforms), old)
    np.save(dataset_copy / "waveforms.npy", old.astype(np.float64))
    with pytest.raises(ValueError, match="dtype float64 is not int16 or float32"):
        dataset.load_dataset(dataset_copy)


@pytest.mark.skipif(parallel.workers() < 2, reason="worker processes need two cores")
def test_preprocessing_in_worker_processes_never_imports_torch(tmp_path, write_tone):
    src = tmp_path / "clips"
    for k in range(parallel.MIN_FILES + 2):  # enough files for the worker processes
        write_tone(src / f"t{k % 2}" / f"c_{k}.wav", seconds=0.2, sample_rate=16000)
    out = tmp_path / "ds"
    code = (
        "import sys; from pathlib import Path; from vae.audio import features; "
        "from vae.data import dataset; "
        f"s = dataset.preprocess(Path({str(src)!r}), Path({str(out)!r}), "
        "features.get_preset('seed')); "
        "print(s.kept, sorted(s.stages), 'torch' in sys.modules)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    kept, *_, torch_loaded = run.stdout.split()
    assert kept == str(parallel.MIN_FILES + 2) and torch_loaded == "False", run.stdout
    assert "'stft'" in run.stdout and "'write'" in run.stdout
    ds = dataset.load_dataset(out)
    first = sources.find_audio_files(src)[0]
    ((_, clip),) = reader.load_clips(first, ds.config)  # through torchaudio, one file
    assert np.abs(ds.waveforms[0] - audio.peak_normalise(clip)).max() <= 2 / 32768
    want = features.waveform_to_features(ds.waveforms[0], ds.config).numpy()
    np.testing.assert_allclose(ds.features[0].astype(np.float32), want, atol=2e-3)


def test_float16_store_is_numpys_cast_bit_for_bit():
    # Every 97th float32 in [0, 1] (subnormal halves, ties, 2**-14, 1) and exact zeros.
    x = np.arange(0, 0x3F800001, 97, dtype=np.uint32).view(np.float32)
    x = np.concatenate([x, np.float32([0, 1, 2**-14, 2**-25, 3 * 2**-25, 2**-24, 1e-45, 0])])
    out = np.full(len(x), np.nan, np.float16)
    analysis.store_float16(x, out)
    assert np.array_equal(out.view(np.uint16), x.astype(np.float16).view(np.uint16))
    # Into a strided slice, reusing buffers, as the analysis stores its frames.
    rng = np.random.default_rng(0)
    chunk = rng.random((3, 5, 7), dtype=np.float32) * (rng.random((3, 5, 7)) > 0.4)
    chunk[0, 0, :3] = [1e-6, 2**-15, 1e-40]
    full = np.zeros((3, 5, 9), np.float16)
    scratch = analysis.Float16Scratch()
    analysis.store_float16(chunk[:1], full[:1, :, :7], scratch)
    analysis.store_float16(chunk, full[:, :, :7], scratch)
    assert np.array_equal(full[:, :, :7].view(np.uint16), chunk.astype(np.float16).view(np.uint16))
    assert not full[:, :, 7:].any()


def test_reflect_pad_is_numpys():
    rng = np.random.default_rng(0)
    for n in (2, 3, 10, 33, 300):
        for half in (1, 4, 16, 31, 256):
            waves = rng.standard_normal((3, n)).astype(np.float32)
            expected = np.pad(waves, ((0, 0), (half, half)), mode="reflect")
            assert np.array_equal(analysis.reflect_pad(waves, half), expected), (n, half)
