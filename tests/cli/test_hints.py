"""Issue 24, finding 4: an error's hint points the right way. A dataset or a folder of clips
given where a checkpoint belongs, a folder of clips given where a dataset belongs, a bad
``--z``, and a skipped file named once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vae.cli import main

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "fsdd-digits"


def _one_error(capsys: pytest.CaptureFixture) -> str:
    """The command's only stderr line, an ``error: ...``."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_a_dataset_where_a_checkpoint_belongs_says_so(
    demo_dataset_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    for command in (
        ["reconstruct", str(demo_dataset_dir), str(tmp_path / "x.wav"), "--out", str(out)],
        ["sample", str(demo_dataset_dir), "--n", "1", "--out", str(out)],
        ["sharpen", str(demo_dataset_dir), "--epochs", "1"],
    ):
        assert main(command) == 1
        line = _one_error(capsys)
        assert f"{demo_dataset_dir} is a dataset, not a checkpoint" in line, line
        assert f"python -m vae train {demo_dataset_dir} --out checkpoints/NAME" in line
        assert f"--out {demo_dataset_dir}" not in line  # never "train one ... --out DATASET"
    assert not out.exists()


def test_a_folder_of_clips_where_a_checkpoint_or_a_dataset_belongs_says_preprocess_it(
    demo_set_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    clips = shutil.copytree(demo_set_dir, tmp_path / "clips")
    assert main(["train", str(clips), "--out", str(tmp_path / "ckpt"), "--epochs", "1"]) == 1
    line = _one_error(capsys)
    assert f"{clips} holds audio clips, not a dataset" in line, line
    assert f"python -m vae preprocess {clips} --out data/NAME" in line
    assert f"--out {clips}" not in line  # never "re-run preprocess ... --out CLIPS"

    assert main(["sample", str(clips), "--n", "1", "--out", str(tmp_path / "o")]) == 1
    line = _one_error(capsys)
    assert f"{clips} holds audio clips, not a checkpoint" in line, line
    assert f"python -m vae preprocess {clips} --out data/NAME" in line


def test_a_bad_z_value_names_the_option(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert main(["decode", str(SHIPPED), "--z", "1,x", "--label", "3", "--out", str(out)]) == 1
    assert _one_error(capsys).startswith("error: --z: 'x' is not a number")


def test_a_skipped_file_is_named_once(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "3_theo_0.wav"
    bad.write_text("not audio, just text\n")
    code = main(["reconstruct", str(SHIPPED), str(bad), "--out", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err
    skipped = [line for line in err.splitlines() if line.startswith("skipped ")]
    assert skipped == [f"skipped {bad}: not readable audio (Format not recognised.)"], err
