"""vae.data.dataset: preprocess real files into a SpectrogramSet, load it back, refuse bad ones."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vae.audio import features
from vae.audio import io as audio
from vae.data import dataset, ingest, sources
from vae.data.dataset import NoUsableAudio, load_dataset, load_split_tensor, preprocess
from vae.storage import files as storage
from vae.storage.output_folder import DatasetExists


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ------------------------------------------------------------------------------ a good set


def test_demo_dataset_arrays_match_config(demo_dataset_dir: Path, tiny_feature_config) -> None:
    ds = load_dataset(demo_dataset_dir)
    cfg = tiny_feature_config
    assert ds.config == cfg
    assert len(ds) == 30
    assert ds.features.shape == (30, *cfg.shape) == (30, 128, 33)
    assert ds.features.dtype == np.float16 and isinstance(ds.features, np.memmap)
    feats = np.asarray(ds.features, dtype=np.float32)
    assert np.isfinite(feats).all() and feats.min() >= 0.0 and feats.max() <= 1.0
    assert feats.max() > 0.9  # the loudest bins sit near 0 dB
    assert ds.waveforms.shape == (30, cfg.clip_samples) and ds.waveforms.dtype == np.float32
    assert ds.waveforms.stored.dtype == np.int16  # on disk: half of float32's bytes
    np.testing.assert_allclose(np.abs(ds.waveforms).max(axis=1), audio.PEAK, atol=1 / 32768)
    # the batched STFT gives what one clip at a time gives, from the stored waveform; stored
    # as 16-bit audio, whose rounding moves bins near the -80 dB floor by up to 0.2 dB
    for i in (0, 17, 29):
        one = features.waveform_to_features(np.array(ds.waveforms[i]), cfg).numpy()
        np.testing.assert_allclose(feats[i], one, atol=4e-3)
        np.testing.assert_allclose(feats[i][one > 0.25], one[one > 0.25], atol=1e-3)


def test_demo_dataset_manifest_and_config(demo_dataset_dir: Path, demo_set_dir: Path) -> None:
    ds = load_dataset(demo_dataset_dir)
    files = sources.find_audio_files(demo_set_dir)
    assert ds.sources == [f.relative_to(demo_set_dir).as_posix() for f in files]
    assert ds.ids == [s.removesuffix(".wav") for s in ds.sources]
    assert ds.labels == [s.split("/")[0] for s in ds.sources]
    assert set(ds.speakers) == {"ann", "bo", "cy"} and ds.starts.tolist() == [0] * 30
    assert ds.label_names == sorted(sources.DEMO_CLASSES)
    assert [ds.label_names[i] for i in ds.label_indices] == ds.labels
    info = ds.info
    assert info["format_version"] == 1 and info["label_rule"] == "folder"
    assert info["source"] == str(demo_set_dir.absolute())
    assert info["counts"]["kept"] == 30 and info["counts"]["refused"] == 0
    assert info["counts"]["files"] == 30
    assert info["counts"]["per_label"] == {name: 6 for name in ds.label_names}
    assert info["counts"]["per_split"] == {"train": 25, "val": 5}
    assert set(info["versions"]) == {"vae", "torch", "torchaudio", "numpy", "python"}
    assert ds.fingerprint == dataset.dataset_fingerprint(ds.config, ds.ids)
    assert (demo_dataset_dir / "errors.csv").read_text() == "file,reason\n"
    assert _rows(demo_dataset_dir / "manifest.csv")[0].keys() == set(dataset.MANIFEST_COLUMNS)


def test_split_is_stratified(demo_dataset_dir: Path) -> None:
    ds = load_dataset(demo_dataset_dir)
    train, val = ds.split_indices("train"), ds.split_indices("val")
    assert len(np.intersect1d(train, val)) == 0
    assert np.array_equal(np.union1d(train, val), ds.split_indices("all"))
    val_labels = [ds.labels[i] for i in val]
    assert sorted(val_labels) == ds.label_names  # one of six per label at val_fraction 0.2
    with pytest.raises(ValueError, match="unknown split 'test'"):
        ds.split_indices("test")


def test_assign_splits_rules() -> None:
    groups = [f"a{i}" for i in range(10)] + ["b0", "b1", "c0"] + [f"n{i}" for i in range(5)]
    labels = ["a"] * 10 + ["b"] * 2 + ["c"] + [""] * 5
    splits = dataset.assign_splits(groups, labels, 0.1, seed=0)
    val = {g for g, s in zip(groups, splits, strict=True) if s == "val"}
    assert sum(g.startswith("a") for g in val) == 1  # round(0.1 * 10)
    assert sum(g.startswith("b") for g in val) == 1  # at least one of two
    assert "c0" not in val  # a single file stays in train
    assert sum(g.startswith("n") for g in val) == 1  # unlabelled clips are a stratum too
    assert splits == dataset.assign_splits(groups, labels, 0.1, seed=0)
    assert any(dataset.assign_splits(groups, labels, 0.1, seed=s) != splits for s in range(1, 5))
    assert set(dataset.assign_splits(groups, labels, 0.0, seed=0)) == {"train"}
    # segments of one file never straddle the split
    chunked = dataset.assign_splits(["f1", "f1", "f2", "f2", "f3"], ["x"] * 5, 0.5, seed=1)
    assert chunked[0] == chunked[1] and chunked[2] == chunked[3]
    assert chunked.count("val") in (3, 4) and "train" in chunked  # two of three files


def test_natural_label_order() -> None:
    names = ["10", "9", "b", "2", "A", "x10", "x9"]
    assert sorted(names, key=dataset.natural_key) == ["2", "9", "10", "A", "b", "x9", "x10"]


def test_lookup_and_tensors(demo_dataset_dir: Path) -> None:
    ds = load_dataset(demo_dataset_dir)
    assert ds.index_of("tone/tone_bo_1") == ds.ids.index("tone/tone_bo_1")
    with pytest.raises(ValueError, match="tone/tone_bo_99.*did you mean.*tone/tone_bo_"):
        ds.index_of("tone/tone_bo_99")
    feats, labels = load_split_tensor(ds, "val")
    val = ds.split_indices("val")
    assert feats.dtype == torch.float32 and feats.shape == (len(val), *ds.config.shape)
    assert labels.dtype == torch.int64 and labels.tolist() == ds.label_indices[val].tolist()
    np.testing.assert_array_equal(feats[0].numpy(), ds.features[val[0]].astype(np.float32))


def test_progress_reports_every_file(tmp_path: Path, demo_set_dir: Path, tiny_feature_config):
    calls: list[tuple[int, int]] = []
    preprocess(
        demo_set_dir, tmp_path / "ds", tiny_feature_config, progress=lambda *a: calls.append(a)
    )
    assert calls[0] == (0, 30) and calls[-1] == (30, 30)
    assert [d for d, _ in calls] == list(range(31))


def test_preprocess_is_deterministic(tmp_path: Path, demo_set_dir: Path, tiny_feature_config):
    a = preprocess(demo_set_dir, tmp_path / "a", tiny_feature_config, seed=5).out
    b = preprocess(demo_set_dir, tmp_path / "b", tiny_feature_config, seed=5).out
    for name in ("features.npy", "waveforms.npy", "manifest.csv", "errors.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert load_dataset(a).fingerprint == load_dataset(b).fingerprint


def test_small_batches_write_the_same_arrays(
    tmp_path: Path, demo_set_dir: Path, demo_dataset_dir: Path, tiny_feature_config, monkeypatch
) -> None:
    monkeypatch.setattr(ingest, "BATCH_BUDGET", 7 * tiny_feature_config.clip_samples)
    small = load_dataset(preprocess(demo_set_dir, tmp_path / "ds", tiny_feature_config).out)
    whole = load_dataset(demo_dataset_dir)  # one batch of 30
    np.testing.assert_array_equal(small.features, whole.features)
    np.testing.assert_array_equal(small.waveforms, whole.waveforms)
    assert small.fingerprint == whole.fingerprint


# ------------------------------------------------------------------------------ bad input


@pytest.fixture
def mixed_folder(tmp_path: Path, write_tone) -> Path:
    """Two good files (a 16-bit WAV, a 24-bit stereo 44.1 kHz FLAC) and five bad ones."""
    src = tmp_path / "mixed"
    write_tone(src / "good.wav")
    write_tone(src / "hifi.flac", sample_rate=44100, channels=2, subtype="PCM_24")
    (src / "empty.wav").write_bytes(b"")
    cut = write_tone(src / "cut.wav")
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    (src / "x.wav").write_text("this is not audio\n" * 20)
    write_tone(src / "silent.wav", freq=0.0)  # sin(0) everywhere: digital silence
    (src / "notes.txt").write_text("ignored: not an audio suffix")
    return src


def test_bad_files_are_listed_and_good_ones_kept(
    tmp_path: Path, mixed_folder: Path, tiny_feature_config
):
    summary = preprocess(mixed_folder, tmp_path / "ds", tiny_feature_config)
    assert summary.kept == 2 and summary.files == 6
    ds = load_dataset(tmp_path / "ds")
    assert ds.sources == ["good.wav", "hifi.flac"]
    assert ds.label_names == [] and ds.label_indices.tolist() == [-1, -1]
    np.testing.assert_allclose(np.abs(ds.waveforms).max(axis=1), audio.PEAK, atol=1 / 32768)
    errors = {r["file"]: r["reason"] for r in _rows(tmp_path / "ds" / "errors.csv")}
    assert errors == dict(summary.refused)
    assert set(errors) == {"cut.wav", "empty.wav", "silent.wav", "x.wav"}
    assert "empty" in errors["empty.wav"]
    assert "truncated" in errors["cut.wav"]
    assert "not readable" in errors["x.wav"]
    assert "silent" in errors["silent.wav"]
    assert all(str(mixed_folder) not in reason for reason in errors.values())  # file column says it
    assert ds.info["counts"]["refused"] == 4


def test_no_usable_audio_writes_nothing(tmp_path: Path, write_tone, tiny_feature_config) -> None:
    src = tmp_path / "bad"
    src.mkdir()
    (src / "a.wav").write_bytes(b"")
    (src / "b.wav").write_text("nope")
    write_tone(src / "c.wav", seconds=0.001)
    out = tmp_path / "out" / "ds"
    with pytest.raises(NoUsableAudio) as err:
        preprocess(src, out, tiny_feature_config)
    message = str(err.value)
    assert str(src) in message and "3 files" in message and "a.wav: empty" in message
    assert "\n" not in message
    assert not out.exists() and _leftovers(out.parent) == []
    (tmp_path / "nothing").mkdir()
    with pytest.raises(NoUsableAudio, match="no audio files found"):
        preprocess(tmp_path / "nothing", out, tiny_feature_config)
    assert not out.exists()


def test_fsdd_rule_refuses_other_names_per_file(tmp_path: Path, write_tone, tiny_feature_config):
    src = tmp_path / "src"
    write_tone(src / "3_amy_0.wav")
    write_tone(src / "hello.wav")
    summary = preprocess(src, tmp_path / "ds", tiny_feature_config, labels="fsdd")
    assert summary.kept == 1 and summary.per_label == {"3": 1}
    [(file, reason)] = summary.refused
    assert file == "hello.wav" and reason.startswith("name does not follow")
    assert "--labels folder" in reason


def test_bad_arguments_are_refused(tmp_path: Path, demo_set_dir: Path, tiny_feature_config):
    cfg = tiny_feature_config
    with pytest.raises(ValueError, match="would replace the source"):
        preprocess(demo_set_dir, demo_set_dir, cfg)
    with pytest.raises(ValueError, match="would replace the source"):
        preprocess(demo_set_dir, demo_set_dir.parent, cfg)
    user = tmp_path / "mine"
    user.mkdir()
    (user / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="exists and is not a dataset"):
        preprocess(demo_set_dir, user, cfg)
    assert (user / "thesis.tex").read_text() == "precious"
    with pytest.raises(ValueError, match="val_fraction"):
        preprocess(demo_set_dir, tmp_path / "ds", cfg, val_fraction=1.0)
    with pytest.raises(ValueError, match="unknown label rule"):
        preprocess(demo_set_dir, tmp_path / "ds", cfg, labels="digits")
    with pytest.raises(ValueError, match="not a folder"):
        preprocess(tmp_path / "missing", tmp_path / "ds", cfg)
    assert not (tmp_path / "ds").exists()


# ------------------------------------------------------------------------------ atomicity


def test_rerun_replaces_the_dataset(
    tmp_path: Path, demo_set_dir: Path, mixed_folder: Path, tiny_feature_config
):
    out = tmp_path / "ds"
    preprocess(demo_set_dir, out, tiny_feature_config)
    first = load_dataset(out).fingerprint
    for src in (mixed_folder, demo_set_dir):  # another source, and the same one again
        with pytest.raises(DatasetExists, match=r"already holds a dataset .*pass --overwrite"):
            preprocess(src, out, tiny_feature_config)
        assert load_dataset(out).fingerprint == first
    preprocess(mixed_folder, out, tiny_feature_config, overwrite=True)
    ds = load_dataset(out)
    assert len(ds) == 2 and ds.fingerprint != first
    assert _leftovers(tmp_path) == []


def test_a_crash_mid_build_keeps_the_old_dataset(
    tmp_path: Path, demo_set_dir: Path, tiny_feature_config, monkeypatch
):
    out = tmp_path / "ds"
    preprocess(demo_set_dir, out, tiny_feature_config)
    before = load_dataset(out).fingerprint
    threads = torch.get_num_threads()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(features, "waveform_to_features", crash)
    with pytest.raises(KeyboardInterrupt):
        preprocess(demo_set_dir, out, tiny_feature_config.replace(n_fft=128), overwrite=True)
    assert load_dataset(out).fingerprint == before
    assert _leftovers(tmp_path) == []
    assert torch.get_num_threads() == threads


def test_leftovers_of_a_killed_run_are_recovered(tmp_path: Path, demo_dataset_dir: Path) -> None:
    out = tmp_path / "ds"
    shutil.copytree(demo_dataset_dir, out)
    fingerprint = load_dataset(out).fingerprint
    dead = _dead_pid()
    # killed between the swap's two renames: the old dataset aside, a half-built one beside it
    os.rename(out, tmp_path / f".ds.old-{dead}-0a1b2c3d")
    (tmp_path / f".ds.tmp-{dead}-deadbeef").mkdir()
    live = tmp_path / f".ds.tmp-{os.getpid()}-00000000"  # a run still going: left alone
    live.mkdir()
    assert load_dataset(out).fingerprint == fingerprint
    assert _leftovers(tmp_path) == [live.name]


def test_npy_appender_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    blocks = [rng.standard_normal((n, 3, 4)).astype(np.float16) for n in (5, 0, 7)]
    writer = storage.NpyAppender(tmp_path / "a.npy", np.float16, (3, 4))
    for block in blocks:
        writer.append(block)
    writer.close()
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.concatenate(blocks))
    with pytest.raises(ValueError, match=r"rows of shape \(4,\)"):
        storage.NpyAppender(tmp_path / "b.npy", np.float32, (3,)).append(np.zeros((2, 4)))


def test_read_ahead_keeps_order_and_bounds_work_in_flight() -> None:
    from concurrent.futures import ThreadPoolExecutor

    started: list[int] = []
    consumed = 0
    with ThreadPoolExecutor(2) as pool:
        for item, result in storage.read_ahead(
            pool, lambda x: started.append(x) or x * x, range(20), 3
        ):
            assert result == item * item and item == consumed
            assert len(started) <= consumed + 4  # the one handed out plus three waiting
            consumed += 1
    assert consumed == 20


# ------------------------------------------------------------------------------ load_dataset


@pytest.fixture
def dataset_copy(tmp_path: Path, demo_dataset_dir: Path) -> Path:
    return Path(shutil.copytree(demo_dataset_dir, tmp_path / "ds"))


def test_load_refuses_another_format_version(dataset_copy: Path) -> None:
    config = dataset_copy / "config.json"
    info = json.loads(config.read_text())
    info["format_version"] = 2
    config.write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"format_version 2 is not supported.*re-run .*preprocess"):
        load_dataset(dataset_copy)


def test_load_refuses_a_missing_file(dataset_copy: Path) -> None:
    (dataset_copy / "features.npy").unlink()
    with pytest.raises(ValueError, match=r"ds: incomplete dataset, missing features.npy; re-run"):
        load_dataset(dataset_copy)


def test_load_refuses_a_short_manifest(dataset_copy: Path) -> None:
    manifest = dataset_copy / "manifest.csv"
    manifest.write_text("".join(manifest.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(ValueError, match=r"features.npy shape \(30, 128, 33\) != \(29, 128, 33\)"):
        load_dataset(dataset_copy)


def test_load_refuses_a_corrupt_array(dataset_copy: Path) -> None:
    (dataset_copy / "waveforms.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match="waveforms.npy: unreadable array"):
        load_dataset(dataset_copy)


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (lambda i: i["feature_config"].update(n_fft=2**30, clip_samples=2**30), "n_fft"),
        (lambda i: i.update(label_names=[""] * 1_000_000), "label_names: 1,000,000 names"),
    ],
)
def test_load_refuses_config_fields_beyond_the_limits(dataset_copy: Path, edit, why) -> None:
    config = dataset_copy / "config.json"
    info = json.loads(config.read_text())
    edit(info)
    config.write_text(json.dumps(info, separators=(",", ":")))
    with pytest.raises(ValueError, match=f"config.json: bad or missing field .*{why}"):
        load_dataset(dataset_copy)


def test_load_refuses_a_nested_config_and_an_array_longer_than_its_file(
    dataset_copy: Path,
) -> None:
    features = dataset_copy / "features.npy"
    features.write_bytes(features.read_bytes()[:-100])  # the header still says every row
    with pytest.raises(ValueError, match=r"features.npy: declares \(30, 128, 33\) float16"):
        load_dataset(dataset_copy)
    (dataset_copy / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="config.json: not a dataset config .*nested too deep"):
        load_dataset(dataset_copy)


def test_load_refuses_an_edited_manifest(dataset_copy: Path) -> None:
    manifest = dataset_copy / "manifest.csv"
    manifest.write_text(manifest.read_text().replace("tone_bo_1,", "tone_bo_one,", 1))
    with pytest.raises(ValueError, match="does not match the fingerprint"):
        load_dataset(dataset_copy)


def test_load_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no dataset folder here"):
        load_dataset(tmp_path / "nowhere")


# ------------------------------------------------------------------------------ chunks, ids


def test_chunks_mode_ids_starts_and_silent_segments(tmp_path: Path, write_tone) -> None:
    cfg = features.FeatureConfig(
        sample_rate=8000, clip_samples=2048, n_fft=256, hop_length=128, segment="chunks"
    )
    src = tmp_path / "src"
    tone = write_tone(tmp_path / "t.wav", seconds=2048 / 8000)
    wave, _ = audio.read_audio(tone)
    # tone, silence, tone, a 30 % tail (dropped): segments 0 and 2 are kept
    long = np.concatenate([wave, np.zeros(2048), wave, wave[:600]])
    audio.write_wav(src / "long.wav", long, 8000)
    write_tone(
        src / "long.flac", seconds=0.2
    )  # one padded segment; same stem: ids keep their suffixes
    ds = load_dataset(preprocess(src, tmp_path / "ds", cfg).out)
    assert ds.ids == ["long.flac", "long.wav", "long.wav#2"]
    assert ds.starts.tolist() == [0, 0, 4096]
    assert ds.splits[1] == ds.splits[2]


# ------------------------------------------------------------------------------ real FSDD


def test_fsdd_slice_labels_and_speakers(tmp_path: Path, fsdd_recordings: Path) -> None:
    files = sorted(fsdd_recordings.glob("*.wav"))[::30]  # 10 of each digit, every speaker
    src = tmp_path / "fsdd"
    src.mkdir()
    for f in files:  # links, never copies, of the shared recordings
        (src / f.name).symlink_to(f)
    cfg = features.get_preset("fsdd")
    summary = preprocess(src, tmp_path / "ds", cfg)
    assert summary.refused == [] and summary.kept == len(files) == 100
    ds = load_dataset(summary.out)
    assert ds.info["label_rule"] == "fsdd"
    assert ds.label_names == [str(d) for d in range(10)]
    assert ds.labels == [f.name.split("_")[0] for f in files]
    assert ds.speakers == [f.name.split("_")[1] for f in files]
    assert set(ds.speakers) == {"george", "jackson", "lucas", "nicolas", "theo", "yweweler"}
    assert ds.info["counts"]["per_label"] == {str(d): 10 for d in range(10)}
    assert sorted(ds.labels[i] for i in ds.split_indices("val")) == ds.label_names
    assert ds.features.shape == (100, *cfg.shape) == (100, 128, 128)
    # trimmed speech fills the start of the clip: the first frames are not silent
    assert float(np.asarray(ds.features[:, :, :4], dtype=np.float32).mean()) > 0.3


def test_ids_count_segments_not_samples_after_a_long_silence(tmp_path: Path, write_tone) -> None:
    """A clip trimmed from late in its file keeps a plain id; its start is where it began."""
    tone = write_tone(tmp_path / "t.wav", seconds=0.3, sample_rate=8000)
    wave, _ = audio.read_audio(tone)
    late = np.concatenate([np.zeros(12000, np.float32), wave])
    audio.write_wav(tmp_path / "src" / "late.wav", late, 8000)
    cfg = features.FeatureConfig(
        sample_rate=8000, clip_samples=4096, n_fft=256, hop_length=128, trim_db=40.0
    )
    summary = preprocess(tmp_path / "src", tmp_path / "ds", cfg, labels="none")
    ds = load_dataset(summary.out)
    assert ds.ids == ["late"]
    assert 11900 <= int(ds.starts[0]) <= 12000


def test_showcase_picks_one_clip_per_label_first(demo_dataset_dir: Path) -> None:
    ds = load_dataset(demo_dataset_dir)
    rows = ds.showcase(3, "val")
    assert len(set(ds.labels[r] for r in rows)) == 3
    assert all(ds.splits[r] == "val" for r in rows)
    every = ds.showcase(100, "val")
    assert sorted(every.tolist()) == ds.split_indices("val").tolist()  # then the rest, once
    assert [ds.labels[r] for r in every[:5]] == ds.label_names  # a round of every label first
