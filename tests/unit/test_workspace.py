"""What is on disk: listing checkpoint folders for the pickers."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from vae import workspace
from vae.audio.features import FeatureConfig
from vae.model import checkpoints as ck
from vae.model.conv_vae import ConvVAE, ModelConfig
from vae.workspace import list_checkpoints

FEATURES = FeatureConfig(sample_rate=8000, clip_samples=4032, n_fft=128, hop_length=64)


def _save(path: Path) -> None:
    cfg = ModelConfig(*FEATURES.shape, channels=(4, 8), latent_dim=5, n_labels=0)
    model = ConvVAE(cfg)
    ck.save_checkpoint(
        path,
        model=model,
        optimizer=torch.optim.Adam(model.parameters()),
        epoch=3,
        feature_config=FEATURES,
        model_config=cfg,
        train_config={},
        label_names=[],
        dataset_info={"path": "/data/x", "fingerprint": "abc123"},
    )


def test_list_checkpoints(tmp_path: Path) -> None:
    _save(tmp_path / "one")
    (tmp_path / "not-a-checkpoint").mkdir()
    [item] = list_checkpoints(tmp_path)
    assert (item.path, item.kind) == (tmp_path / "one", "checkpoint")
    assert item.summary == "epoch 3, latent 5, unconditional"
    assert list_checkpoints(tmp_path / "missing") == []


def test_a_config_nested_too_deep_is_listed_as_damaged(tmp_path: Path) -> None:
    folder = tmp_path / "deep"
    folder.mkdir()
    (folder / ck.WEIGHTS_FILE).write_bytes(b"")
    (folder / ck.CONFIG_FILE).write_text("[" * 100_000 + "]" * 100_000)
    [item] = list_checkpoints(tmp_path)  # was a RecursionError on every page
    assert item.summary.startswith("damaged: config.json is not readable JSON")


def test_a_config_out_of_range_is_listed_as_damaged(tmp_path: Path) -> None:
    _save(tmp_path / "one")
    config = tmp_path / "one" / ck.CONFIG_FILE
    info = json.loads(config.read_text())
    info["feature_config"]["hop_length"] = 0
    config.write_text(json.dumps(info))
    [item] = list_checkpoints(tmp_path)
    assert item.summary.startswith("damaged: config.json holds a bad config (hop_length=0")


def test_a_summary_is_made_once_per_change_on_disk(tmp_path: Path, monkeypatch) -> None:
    _save(tmp_path / "one")
    reads = []
    real = workspace.read_json
    monkeypatch.setattr(workspace, "read_json", lambda file: reads.append(file) or real(file))
    assert list_checkpoints(tmp_path)[0].summary == "epoch 3, latent 5, unconditional"
    assert list_checkpoints(tmp_path)[0].summary == "epoch 3, latent 5, unconditional"
    assert len(reads) == 1  # the second listing took the kept summary
    config = tmp_path / "one" / ck.CONFIG_FILE
    config.write_text(config.read_text().replace('"epoch": 3', '"epoch": 4'))
    assert list_checkpoints(tmp_path)[0].summary == "epoch 4, latent 5, unconditional"
    assert len(reads) == 2


def _npz_declaring(file: Path, **shapes: tuple[tuple[int, ...], str]) -> None:
    """An .npz whose members declare ``shapes`` (shape, dtype) in their headers, no data."""
    with zipfile.ZipFile(file, "w") as zf:
        for key, (shape, dtype) in shapes.items():
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(
                header, {"descr": dtype, "fortran_order": False, "shape": shape}
            )
            zf.writestr(f"{key}.npy", header.getvalue())


@pytest.mark.parametrize(
    ("means", "ids", "why"),
    [
        (
            ((2**23, 16), "<f4"),
            (2**23,),
            "means declares (8388608, 16) float32 (536,870,912 bytes): more than",
        ),
        (((30, 3), "<f4"), (30,), "means of shape (30, 3) for latent_dim 5"),
        (((150,), "<f4"), (150,), "means of shape (150,), not (N, latent_dim)"),
        (((30, 5), "<f4"), (27,), "ids of shape (27,) for 30 means"),
        (((0, 5), "<f4"), (0,), "means of 0 rows: 1 to 1,048,576 clips"),
        (((30, 5), "|O"), (30,), "means: object dtype object (a pickle)"),
    ],
)
def test_latents_declaring_unusable_shapes_are_listed_as_damaged(
    tmp_path: Path, means: tuple, ids: tuple, why: str
) -> None:
    _save(tmp_path / "one")
    rows = means[0][0]
    _npz_declaring(
        tmp_path / "one" / ck.LATENTS_FILE,
        means=means,
        labels=((rows,), "<i8"),
        ids=(ids, "<U8"),
    )
    [item] = list_checkpoints(tmp_path)  # from the headers: nothing decompressed
    assert item.summary.startswith("damaged: latents.npz ") and why in item.summary


# ---------------------------------------------------------- a number field holding text


LINK = "![b](http://host/beacon.png) [Download the fixed model](http://evil.example/payload)"


def _edit(file: Path, **fields: object) -> None:
    """Set ``a.b``-style fields of a JSON file (``a__b`` as keyword)."""
    info = json.loads(file.read_text())
    for dotted, value in fields.items():
        *parents, last = dotted.split("__")
        node = info
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    file.write_text(json.dumps(info))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epoch", LINK),
        ("epoch", True),
        ("epoch", 2.5),
        ("epoch", -1),
        ("format_version", "1"),
        ("dataset__train_clips", LINK),
        ("label_names", [LINK, {"a": 1}]),
        ("model_config__latent_dim", 5.0),
    ],
)
def test_text_where_a_checkpoint_number_belongs_marks_it_damaged(
    tmp_path: Path, field: str, value: object
) -> None:
    for name in ("old", "new"):
        _save(tmp_path / name)
    _edit(tmp_path / "new" / ck.CONFIG_FILE, **{field: value})
    items = list_checkpoints(tmp_path)
    bad = next(i for i in items if i.path.name == "new")
    assert bad.damaged and bad.summary.startswith("damaged: config.json"), bad.summary
    assert "http" not in bad.summary  # the value itself is never repeated
    # the newest on disk, yet what a new session opens is the good one
    assert workspace.newest_usable(items).path == tmp_path / "old"
    assert workspace.newest_usable([bad]) is None


def _dataset(folder: Path) -> None:
    from vae.data.dataset import CONFIG_FILE, FEATURES_FILE

    folder.mkdir(parents=True)
    (folder / FEATURES_FILE).write_bytes(b"")
    info = {
        "format_version": 1,
        "feature_config": FEATURES.to_dict(),
        "label_names": ["a", "b"],
        "counts": {"kept": 4, "refused": 0, "files": 4, "per_label": {"a": 2, "b": 2}},
    }
    (folder / CONFIG_FILE).write_text(json.dumps(info))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("counts__kept", LINK),
        ("counts__per_label", {"a": LINK}),
        ("feature_config__sample_rate", LINK),
        ("label_names", "ab"),
    ],
)
def test_text_where_a_dataset_number_belongs_marks_it_damaged(
    tmp_path: Path, field: str, value: object
) -> None:
    _dataset(tmp_path / "good")
    assert [i.summary for i in workspace.list_datasets(tmp_path)] == ["4 clips, 2 labels, 8000 Hz"]
    _dataset(tmp_path / "bad")
    _edit(tmp_path / "bad" / "config.json", **{field: value})
    items = {i.path.name: i for i in workspace.list_datasets(tmp_path)}
    assert items["bad"].damaged and not items["good"].damaged
    assert (
        items["bad"].summary.startswith("damaged: config.json")
        and "http" not in items["bad"].summary
    )


def test_a_judge_whose_accuracy_is_text_is_listed_as_damaged(tmp_path: Path) -> None:
    from vae.evaluation import judge as jg

    for name, accuracy in (("good", 0.9), ("bad", LINK), ("worse", float("nan"))):
        folder = tmp_path / "judges" / name
        folder.mkdir(parents=True)
        (folder / jg.WEIGHTS_FILE).write_bytes(b"")
        info = {"format_version": 1, "val_accuracy": accuracy, "label_names": ["a"]}
        (folder / jg.CONFIG_FILE).write_text(json.dumps(info))
    items = {i.path.name: i for i in workspace.list_judges(tmp_path / "judges", tmp_path)}
    assert items["good"].summary == "1 labels, 90.0% on validation" and not items["good"].damaged
    for name in ("bad", "worse"):
        assert items[name].damaged
        assert items[name].summary.startswith("damaged: judge.json: val_accuracy is not a fraction")
