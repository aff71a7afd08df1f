"""Issue 23, findings 1 and 10: every command that writes a folder refuses one that holds
something else (a dataset, a checkpoint, a parent of two datasets and notes), in one line and
with every byte intact; re-running into its own kind of folder works and keeps user files."""

import shutil
from pathlib import Path

import pytest

from vae.cli import main

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "fsdd-digits"


@pytest.fixture
def user_files(tmp_path: Path, demo_dataset_dir: Path) -> dict[str, Path]:
    """A dataset, a checkpoint, and a folder holding two datasets and notes.txt."""
    shutil.copytree(demo_dataset_dir, tmp_path / "data")
    shutil.copytree(SHIPPED, tmp_path / "ckpt")
    parent = tmp_path / "parent"
    for name in ("one", "two"):
        shutil.copytree(demo_dataset_dir, parent / name)
    (parent / "notes.txt").write_text("my notes")
    return {"data": tmp_path / "data", "ckpt": tmp_path / "ckpt", "parent": parent}


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def _command(name: str, out: Path, clips: Path, data: Path) -> list[str]:
    """The command line of ``name`` writing into ``out``."""
    return {
        "vocoder": ["vocoder", str(data), "--out", str(out), "--seconds", "1", "--val-clips", "2"],
        "export": ["export", str(SHIPPED), "--out", str(out)],
        "preprocess": ["preprocess", str(clips), "--out", str(out), "--overwrite"],
        "demo-data": ["demo-data", str(out), "--per-class", "1"],
        "judge": ["judge", str(data), "--out", str(out), "--epochs", "1"],
        "train": ["train", str(data), "--out", str(out), "--epochs", "1"],
    }[name]


OWN = {"preprocess": "data", "train": None}  # the target each command may write into


@pytest.mark.parametrize("command", ["vocoder", "export", "preprocess", "demo-data", "judge",
                                     "train"])  # fmt: skip
def test_a_folder_of_other_things_is_refused_in_one_line_and_kept(
    command, user_files, tmp_path, demo_set_dir, demo_dataset_dir, capsys
) -> None:
    before = _snapshot(tmp_path)
    for target, folder in user_files.items():
        if OWN.get(command) == target:
            continue
        code = main(_command(command, folder, demo_set_dir, demo_dataset_dir))
        err = capsys.readouterr().err.strip().splitlines()
        assert code != 0, (command, target)
        assert len(err) == 1 and err[0].startswith("error: ") and str(folder) in err[0], err
        assert _snapshot(tmp_path) == before, (command, target)
    holds = {"data": "(holds a dataset)", "ckpt": "checkpoint", "parent": "notes.txt, one, two"}
    for target, words in holds.items():
        if OWN.get(command) != target and command != "train":
            main(_command(command, user_files[target], demo_set_dir, demo_dataset_dir))
            assert words in capsys.readouterr().err


@pytest.mark.slow  # five commands twice: a 1 s vocoder budget each time, a judge, an export
def test_re_runs_into_their_own_folders_replace_their_files_and_keep_the_users(
    tmp_path, demo_set_dir, demo_dataset_dir, capsys
) -> None:
    for command in ("vocoder", "preprocess", "demo-data", "judge", "export"):
        out = tmp_path / command
        assert main(_command(command, out, demo_set_dir, demo_dataset_dir)) == 0, command
        (out / "my_notes.txt").write_text("mine")
        first = {p.name for p in out.iterdir()}
        assert main(_command(command, out, demo_set_dir, demo_dataset_dir)) == 0, command
        assert {p.name for p in out.iterdir()} == first, command
        assert (out / "my_notes.txt").read_text() == "mine"
    capsys.readouterr()
