"""Issue 24, finding 1: ``preprocess`` onto an existing dataset is refused in one line that
names ``--overwrite`` and the checkpoints trained on it, with every byte kept; with
``--overwrite`` it is replaced and those checkpoints are named in a warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vae.cli import main

TINY = ["--sample-rate", "8000", "--clip-seconds", "0.504", "--n-fft", "128", "--hop", "64"]
TINY_MODEL = ["--channels", "8,16", "--latent-dim", "4", "--batch-size", "8"]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_set_dir: Path, write_tone):
    """A working folder as a user's: data/set made from the demo clips, checkpoints/set
    trained on it for one epoch, and another folder of clips (two FSDD-named tones)."""
    monkeypatch.chdir(tmp_path)
    assert main(["preprocess", str(demo_set_dir), "--out", "data/set", *TINY]) == 0
    assert (
        main(["train", "data/set", "--out", "checkpoints/set", "--epochs", "1", *TINY_MODEL]) == 0
    )
    for i, name in enumerate(["3_theo_0.wav", "5_george_1.wav"]):
        write_tone(tmp_path / "other" / name, freq=250.0 + 150 * i)
    return tmp_path


@pytest.mark.slow  # trains one epoch
def test_preprocess_onto_a_dataset_is_refused_until_overwrite_is_given(
    workspace: Path, demo_set_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    capsys.readouterr()
    before = _snapshot(workspace / "data")
    for src, origin in ((workspace / "other", str(demo_set_dir)), (demo_set_dir, "this same")):
        assert main(["preprocess", str(src), "--out", "data/set", *TINY]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: data/set: already holds a dataset")
        assert "pass --overwrite" in err[0] and origin in err[0]
        assert "checkpoints trained on it: checkpoints/set" in err[0]
        assert _snapshot(workspace / "data") == before  # the dataset is unchanged

    assert main(["preprocess", str(workspace / "other"), "--out", "data/set", "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert "warning: replaced the dataset in data/set" in err and "checkpoints/set" in err
    info = json.loads((workspace / "data/set/config.json").read_text())
    assert info["source"] == str(workspace / "other") and info["counts"]["kept"] == 2
    # The checkpoint now points at other data: a later replacement no longer names it.
    assert main(["preprocess", str(demo_set_dir), "--out", "data/set"]) == 1
    assert "checkpoints" not in capsys.readouterr().err
