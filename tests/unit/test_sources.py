"""vae.data.sources: finding audio files, label rules, and the synthetic demo set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vae.audio import features
from vae.audio import io as audio
from vae.data import reader, sources


def _touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def test_find_audio_files_filters_sorts_and_skips_hidden(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "b.FLAC",
        "a.wav",
        "notes.txt",
        "noext",
        ".hidden.wav",
        ".cache/x.wav",
        "sub/deeper/e.ogg",
        "sub/c.mp3",
        "sub/.d.wav",
    )
    (tmp_path / "dir.wav").mkdir()  # a folder with an audio suffix is not a file
    found = sources.find_audio_files(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a.wav",
        "b.FLAC",
        "sub/c.mp3",
        "sub/deeper/e.ogg",
    ]


def test_find_audio_files_refuses_a_non_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="missing.*not a folder"):
        sources.find_audio_files(tmp_path / "missing")


def test_auto_rule_prefers_fsdd_then_folder_then_none(tmp_path: Path) -> None:
    fsdd = [tmp_path / "0_george_0.wav", tmp_path / "sub" / "9_yweweler-2_49.flac"]
    assert sources.resolve_label_rule(fsdd, tmp_path, "auto") == "fsdd"
    folders = [tmp_path / "dog" / "a.wav", tmp_path / "cat" / "x" / "b.wav"]
    assert sources.resolve_label_rule(folders, tmp_path, "auto") == "folder"
    mixed = [tmp_path / "dog" / "a.wav", tmp_path / "top.wav"]
    assert sources.resolve_label_rule(mixed, tmp_path, "auto") == "none"
    assert (
        sources.resolve_label_rule([tmp_path / "dog" / "0_george_0.wav", *folders], tmp_path)
        == "folder"
    )
    assert sources.resolve_label_rule([], tmp_path, "auto") == "none"


def test_explicit_rule_is_kept_and_unknown_rule_refused(tmp_path: Path) -> None:
    files = [tmp_path / "0_george_0.wav"]
    assert sources.resolve_label_rule(files, tmp_path, "none") == "none"
    assert sources.resolve_label_rule(files, tmp_path, "folder") == "folder"
    with pytest.raises(ValueError, match="unknown label rule 'digits'"):
        sources.resolve_label_rule(files, tmp_path, "digits")


def test_label_for_each_rule(tmp_path: Path) -> None:
    assert sources.label_for(tmp_path / "7_jackson_32.wav", tmp_path, "fsdd") == ("7", "jackson")
    assert sources.label_for(tmp_path / "s" / "10_a-b_1.wav", tmp_path, "fsdd") == ("10", "a-b")
    assert sources.label_for(tmp_path / "dog" / "x" / "1.wav", tmp_path, "folder") == ("dog", "")
    assert sources.label_for(tmp_path / "top.wav", tmp_path, "folder") == ("", "")
    rising = tmp_path / "rising" / "rising_ann_3.wav"  # the demo set: speakers in the names
    assert sources.label_for(rising, tmp_path, "folder") == ("rising", "ann")
    assert sources.label_for(tmp_path / "dog" / "my_dog.wav", tmp_path, "folder") == ("dog", "")
    assert sources.label_for(tmp_path / "7_jackson_32.wav", tmp_path, "none") == ("", "")
    with pytest.raises(ValueError, match="resolve"):
        sources.label_for(tmp_path / "7_jackson_32.wav", tmp_path, "auto")


@pytest.mark.parametrize("name", ["hello.wav", "7_jackson.wav", "x_jackson_1.wav", "7_a_b_1.wav"])
def test_fsdd_rule_refuses_other_names_with_a_fix(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError) as err:
        sources.label_for(tmp_path / name, tmp_path, "fsdd")
    message = str(err.value)
    assert name in message
    assert "{digit}_{speaker}_{i}.wav" in message
    assert "--labels folder" in message and "none" in message


def _file_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("3_george_1.mp3", "3"),  # FSDD's rule
        ("recordings/7_theo_12.wav", "7"),
        ("rising_bo_2.wav", "rising"),  # the demo set's file, out of its folder
        ("12_george_1.wav", None),  # not one of the model's labels
        ("3-george.wav", None),
        ("my tone.wav", None),
    ],
)
def test_label_from_a_file_name(name: str, label: str | None) -> None:
    names = [str(d) for d in range(10)] + ["rising", "tone"]
    assert sources.label_from_name(name, names) == label


def test_demo_set_layout_labels_and_determinism(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    a = sources.make_demo_set(
        tmp_path / "a", n_per_class=4, seed=3, progress=lambda d, t: calls.append((d, t))
    )
    b = sources.make_demo_set(tmp_path / "b", n_per_class=4, seed=3)
    c = sources.make_demo_set(tmp_path / "c", n_per_class=4, seed=4)
    files = sources.find_audio_files(a)
    assert len(files) == 4 * len(sources.DEMO_CLASSES) == 20
    assert (a / sources.DEMO_README).read_text().startswith(sources.DEMO_MARKER)
    assert sources.resolve_label_rule(files, a, "auto") == "folder"
    labels = {sources.label_for(f, a, "folder")[0] for f in files}
    assert labels == set(sources.DEMO_CLASSES)
    for f in files:  # names follow {class}/{class}_{speaker}_{i}.wav
        kind, speaker, _ = f.stem.split("_")
        assert f.parent.name == kind and speaker in sources.DEMO_SPEAKERS
    assert calls[-1] == (20, 20) and len(calls) == 20
    assert _file_bytes(a) == _file_bytes(b)  # same seed, byte-identical
    assert _file_bytes(a).keys() == _file_bytes(c).keys()
    assert _file_bytes(a) != _file_bytes(c)


def test_demo_set_clips_are_valid_audio(demo_set_dir: Path) -> None:
    info = [audio.sf.info(str(f)) for f in sources.find_audio_files(demo_set_dir)]
    assert {i.samplerate for i in info} == {8000}
    assert {i.channels for i in info} == {1}
    assert {i.subtype for i in info} == {"PCM_16"}
    assert all(0.4 <= i.duration <= 1.2 for i in info)  # 0.4-0.9 s of sound plus padding


def test_demo_set_rewrites_itself_but_not_a_user_folder(tmp_path: Path) -> None:
    out = sources.make_demo_set(tmp_path / "demo", n_per_class=5)
    sources.make_demo_set(out, n_per_class=2)  # a smaller set leaves no stale clips behind
    assert len(sources.find_audio_files(out)) == 2 * len(sources.DEMO_CLASSES)
    user = tmp_path / "mine"
    _touch(user, "keep.wav")
    with pytest.raises(ValueError, match="is not a demo set folder"):
        sources.make_demo_set(user, n_per_class=1)
    assert (user / "keep.wav").exists()


def _centroid_track(path: Path) -> np.ndarray:
    """Spectral centroid (Hz) of each loud frame of a clip."""
    cfg = features.FeatureConfig(sample_rate=8000, clip_samples=8000, n_fft=256, hop_length=64)
    [(_, wave)] = reader.load_clips(path, cfg.replace(trim_db=30.0))
    mag = features.stft_magnitude(torch.from_numpy(wave), cfg).numpy()  # (bins, frames)
    energy = mag.sum(axis=0)
    freqs = np.linspace(0, 4000, mag.shape[0])[:, None]
    loud = energy > 0.3 * energy.max()
    return ((freqs * mag).sum(axis=0) / np.maximum(energy, 1e-9))[loud]


def test_demo_classes_look_different_in_a_spectrogram(demo_set_dir: Path) -> None:
    for speaker, i in [("ann", 0), ("bo", 1), ("cy", 2)]:
        rising = _centroid_track(demo_set_dir / "rising" / f"rising_{speaker}_{i}.wav")
        falling = _centroid_track(demo_set_dir / "falling" / f"falling_{speaker}_{i}.wav")
        tone = _centroid_track(demo_set_dir / "tone" / f"tone_{speaker}_{i}.wav")
        third = len(rising) // 3
        assert rising[-third:].mean() > 1.5 * rising[:third].mean()
        third = len(falling) // 3
        assert falling[:third].mean() > 1.5 * falling[-third:].mean()
        assert tone.std() < 0.1 * tone.mean()  # steady


def test_files_named_as_audio_are_sorted_by_their_first_bytes(tmp_path: Path, write_tone) -> None:
    """Issue 24, finding 10: a text file or an empty one named .wav is no audio file."""
    kinds = {"a.wav": "PCM_16", "b.flac": "PCM_16", "c.ogg": "VORBIS", "d.aiff": "PCM_16"}
    good = [write_tone(tmp_path / name, subtype=kind) for name, kind in kinds.items()]
    (tmp_path / "e.wav").write_text("some notes, saved as .wav")
    (tmp_path / "f.wav").write_bytes(b"")
    (tmp_path / "g.wav").write_bytes(b"RIFF not really a wave file")
    files = sources.find_audio_files(tmp_path)
    readable, others = sources.sort_by_header(files)
    assert readable == good
    assert [p.name for p in others] == ["e.wav", "f.wav", "g.wav"]
    assert sources.holds_audio_files(tmp_path) and not sources.holds_audio_files(tmp_path / "x")
