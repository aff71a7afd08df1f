"""vae.storage.output_folder: one rule for every output folder (issue 23, findings 1 and 10)."""

import json
import os
import shutil
from pathlib import Path

import pytest

from vae.data import dataset, sources
from vae.evaluation import judge
from vae.export import exporter as export
from vae.model import checkpoints
from vae.storage import output_folder as of
from vae.storage.folder_lock import LOCK_FILE
from vae.training.train import JOB_FILES, STAGE_FILES
from vae.vocoder import network as vocoder


def test_kinds_name_the_files_their_modules_write() -> None:
    """The names are written out in output_folder (no import cycle): held equal here."""
    ds_files = (dataset.FEATURES_FILE, dataset.WAVEFORMS_FILE, dataset.MANIFEST_FILE)
    assert all(of.DATASET.writes(n) for n in (*ds_files, dataset.CONFIG_FILE, dataset.ERRORS_FILE))
    assert of.DATASET.markers == (dataset.CONFIG_FILE, dataset.FEATURES_FILE)
    assert of.CHECKPOINT.markers == (checkpoints.CONFIG_FILE, checkpoints.WEIGHTS_FILE)
    run = (checkpoints.METRICS_FILE, checkpoints.LATENTS_FILE, checkpoints.BEST_DIR, LOCK_FILE)
    assert all(of.CHECKPOINT.leftovers(n) for n in (*run, *JOB_FILES, *STAGE_FILES))
    assert of.VOCODER.manifest == vocoder.CONFIG_FILE and of.VOCODER.writes(vocoder.WEIGHTS_FILE)
    assert of.JUDGE.manifest == judge.CONFIG_FILE and of.JUDGE.writes(judge.WEIGHTS_FILE)
    assert of.EXPORT.manifest == export.MANIFEST
    for fmt, ext in export.FORMATS.items():
        assert all(of.EXPORT.writes(role + ext) for role in ("decoder", "decoder_mix", "encoder"))
        assert fmt in ("onnx", "torchscript")
    assert of.DEMO_SET.markers == (sources.DEMO_README,)
    assert of.DEMO_SET.marker_text == sources.DEMO_MARKER
    assert all(of.DEMO_SET.writes(kind) for kind in sources.DEMO_CLASSES)


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every folder under ``root``, by relative path."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def _user_folders(root: Path) -> dict[str, Path]:
    """A dataset-like, a checkpoint-like, a parent of two datasets and notes, and a file."""
    made = {}
    for name, files in {
        "data": ("config.json", "features.npy", "manifest.csv"),
        "ckpt": ("config.json", "model.pt", "metrics.jsonl"),
    }.items():
        (root / name).mkdir()
        for f in files:
            (root / name / f).write_text(f"{name}/{f}")
        made[name] = root / name
    parent = root / "parent"
    for sub in ("one", "two"):
        (parent / sub).mkdir(parents=True)
        (parent / sub / "config.json").write_text("{}")
        (parent / sub / "features.npy").write_text("x")
    (parent / "notes.txt").write_text("mine")
    (root / "file.txt").write_text("a file")
    made["parent"], made["file"] = parent, root / "file.txt"
    return made


@pytest.mark.parametrize("kind", of.KINDS, ids=lambda k: k.name)
def test_every_kind_refuses_other_folders_in_one_line_and_touches_nothing(kind, tmp_path):
    made = _user_folders(tmp_path)
    before = _snapshot(tmp_path)
    for name, folder in made.items():
        if kind.holds(folder) or (name == "ckpt" and kind is of.CHECKPOINT):
            continue  # its own kind
        with pytest.raises(ValueError) as refused:
            of.check_output_folder(folder, kind)
        message = str(refused.value)
        assert "\n" not in message and message.startswith(str(folder)), message
        assert "choose an empty or new folder" in message
    assert _snapshot(tmp_path) == before
    holds = {"data": "a dataset", "ckpt": "a checkpoint", "parent": "notes.txt, one, two"}
    with pytest.raises(ValueError, match=f"holds {holds['parent']}"):
        of.check_output_folder(made["parent"], kind)
    if kind is not of.DATASET:
        with pytest.raises(ValueError, match=r"\(holds a dataset\)"):
            of.check_output_folder(made["data"], kind)


def test_missing_empty_and_own_folders_are_accepted(tmp_path) -> None:
    assert of.check_output_folder(tmp_path / "new", of.VOCODER) is False
    (tmp_path / "empty").mkdir()
    assert of.check_output_folder(tmp_path / "empty", of.EXPORT) is False
    (tmp_path / "voc").mkdir()
    (tmp_path / "voc" / "vocoder.json").write_text("{}")
    (tmp_path / "voc" / "notes.txt").write_text("mine")
    assert of.check_output_folder(tmp_path / "voc", of.VOCODER) is True
    run = tmp_path / "run"  # a training killed in its first epoch
    run.mkdir()
    for name in (".lock", "metrics.jsonl", "model.pt", ".model.pt.123-abcd1234.tmp"):
        (run / name).write_text("x")
    assert of.check_output_folder(run, of.CHECKPOINT) is True
    with pytest.raises(ValueError, match=r"is a file, not a vocoder folder"):
        of.check_output_folder(tmp_path / "voc" / "notes.txt", of.VOCODER)


def _built(tmp_path: Path, files: dict[str, str]) -> Path:
    tmp = tmp_path / f".out.tmp-{os.getpid()}-0123abcd"
    tmp.mkdir()
    for name, text in files.items():
        (tmp / name).write_text(text)
    return tmp


def test_install_replaces_only_its_own_files(tmp_path) -> None:
    out = tmp_path / "out"
    of.install(_built(tmp_path, {"decoder.onnx": "1", "vocoder.onnx": "1", "export.json": "1"}),
               out, of.EXPORT)  # fmt: skip
    (out / "my_notes.txt").write_text("mine")
    (out / "sub").mkdir()
    (out / "sub" / "keep.txt").write_text("kept")
    of.install(_built(tmp_path, {"decoder.pt": "2", "export.json": "2"}), out, of.EXPORT)
    assert sorted(p.name for p in out.iterdir()) == [
        "decoder.pt", "export.json", "my_notes.txt", "sub",
    ]  # fmt: skip
    assert (out / "decoder.pt").read_text() == (out / "export.json").read_text() == "2"
    assert (out / "my_notes.txt").read_text() == "mine"
    assert (out / "sub" / "keep.txt").read_text() == "kept"
    assert not list(tmp_path.glob(".out.*"))


def test_user_files_cross_the_swap_as_hard_links_of_the_same_bytes(tmp_path) -> None:
    out = tmp_path / "voc"
    of.install(_built(tmp_path, {"vocoder.pt": "old", "vocoder.json": "{}"}), out, of.VOCODER)
    (out / "notes.txt").write_text("mine")
    (out / "sub" / "deeper").mkdir(parents=True)
    (out / "sub" / "deeper" / "keep.txt").write_text("kept")
    (out / "link").symlink_to("notes.txt")
    inode = (out / "notes.txt").stat().st_ino
    of.install(_built(tmp_path, {"vocoder.pt": "new", "vocoder.json": "{}"}), out, of.VOCODER)
    assert (out / "vocoder.pt").read_text() == "new"
    assert (out / "notes.txt").stat().st_ino == inode  # the user's file itself, not a copy
    assert (out / "sub" / "deeper" / "keep.txt").read_text() == "kept"
    assert os.readlink(out / "link") == "notes.txt"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["voc"]  # no temp or old folder left


# ---------------------------------------------------------------- replacing a dataset (issue 24)

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "fsdd-digits"


def _trained_on(ckpt: Path, dataset_path: object, fingerprint: object) -> Path:
    """A copy of the shipped checkpoint whose record of its training data is changed, as a
    run trained on ``dataset_path`` (with that ``fingerprint``) writes it."""
    shutil.copytree(SHIPPED, ckpt)
    info = json.loads((ckpt / "config.json").read_text())
    info["dataset"].update(path=dataset_path, fingerprint=fingerprint)
    (ckpt / "config.json").write_text(json.dumps(info))
    return ckpt


def test_the_checkpoints_a_replacement_would_strand_are_named(
    tmp_path, monkeypatch, demo_dataset_dir
) -> None:
    from vae.workspace import CHECKPOINT_ROOT

    assert of.CHECKPOINT_ROOT == CHECKPOINT_ROOT
    monkeypatch.chdir(tmp_path)
    data = Path("data/set")
    shutil.copytree(demo_dataset_dir, data)
    mine = dataset.load_dataset(data).fingerprint
    root = Path("checkpoints")
    _trained_on(root / "relative", "data/set", mine)  # as the shipped one records it
    _trained_on(root / "absolute", str(tmp_path / "data/set"), mine)
    _trained_on(root / "older", str(tmp_path / "data/set"), "0123456789abcdef")  # other data
    _trained_on(root / "elsewhere", str(tmp_path / "data/other"), mine)
    _trained_on(root / "hostile", "data/set\0", ["not", "a", "fingerprint"])
    (root / "torn").mkdir()
    (root / "torn" / "config.json").write_text("{not json")
    (root / "torn" / "model.pt").write_text("x")

    assert of.checkpoints_trained_on(data, mine) == [root / "absolute", root / "relative"]
    existing = of.existing_dataset(data)
    assert existing.checkpoints == [root / "absolute", root / "relative"]
    with pytest.raises(of.DatasetExists) as refused:
        of.refuse_replacing_dataset(data, demo_dataset_dir.parent / "elsewhere")
    line = str(refused.value)
    assert line.startswith("data/set: already holds a dataset (30 clips from ")
    assert "checkpoints trained on it: checkpoints/absolute, checkpoints/relative" in line
    assert "pass --overwrite" in line and "\n" not in line
    assert of.existing_dataset(Path("data/none")) is None
    of.refuse_replacing_dataset(Path("data/none"))  # nothing there: nothing to refuse
