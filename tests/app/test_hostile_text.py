"""Text from disk is text (issue 23, finding 5): a dataset and a checkpoint whose labels,
clip ids, speakers and file names hold Markdown images and links and HTML are shown escaped
on every page, and a number field holding text marks its folder damaged, never current.

What the browser gets is checked on the protos AppTest holds: every field Streamlit renders
as Markdown (bodies, widget labels and help, radio options) has no live link, image or tag
once code spans and backslash escapes are set aside, and no plotly figure draws a tag.
``tests/app/test_hostile_app.py`` holds the hostile binary files; the escaping helper's own
tests are ``tests/unit/test_safe_text.py``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.apptest import open_page
from ui.safe_text import JOINER

pytestmark = pytest.mark.slow

BEACON = "![b](http://127.0.0.1:9/beacon.png)"
LINK = "[Download the fixed model](http://evil.example/payload)"
HOSTILE = [
    BEACON,
    LINK,
    "<img src=http://127.0.0.1:9/i.png>",
    "<a href=http://evil.example/>fixed</a>",
    "<script>alert(1)</script> www.evil.example",
]
# What would be live in rendered Markdown (outside code spans and escapes), and in plotly text.
LIVE = ("](http", "<img", "<a ", "<script", "http://", "www.evil")
TAGS = ("<img", "<a ", "<script")
FIELDS = ("body", "label", "help")  # proto fields Streamlit renders as Markdown


def _hostile_dataset(folder: Path) -> dict[str, str]:
    """Give a preprocessed dataset hostile labels, ids and speakers (its fingerprint made
    again, so it loads as a consistent dataset); returns old label -> new."""
    from vae.audio.features import FeatureConfig
    from vae.data.dataset import dataset_fingerprint

    info = json.loads((folder / "config.json").read_text())
    relabel = {old: f"{HOSTILE[i % 5]} {i}" for i, old in enumerate(info["label_names"])}
    with (folder / "manifest.csv").open(newline="") as f:
        header, *rows = list(csv.reader(f))
    for k, row in enumerate(rows):
        row[0] = f"{HOSTILE[k % 5]} #{k}"
        row[2] = relabel.get(row[2], row[2])
        row[3] = HOSTILE[(k + 1) % 5]
    with (folder / "manifest.csv").open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    ids = [row[0] for row in rows]
    info["label_names"] = list(relabel.values())
    info["counts"]["per_label"] = {relabel[k]: v for k, v in info["counts"]["per_label"].items()}
    info["source"] = LINK
    info["fingerprint"] = dataset_fingerprint(FeatureConfig.from_dict(info["feature_config"]), ids)
    (folder / "config.json").write_text(json.dumps(info))
    return relabel


def _hostile_checkpoint(folder: Path, relabel: dict[str, str], dataset: Path) -> None:
    """The checkpoint's label names, stored ids and dataset record made to match the
    hostile dataset (still a checkpoint of it)."""
    info = json.loads((folder / "config.json").read_text())
    info["label_names"] = [relabel[name] for name in info["label_names"]]
    ds_info = json.loads((dataset / "config.json").read_text())
    info["dataset"].update(fingerprint=ds_info["fingerprint"], path=str(dataset))
    info["created"] = BEACON
    (folder / "config.json").write_text(json.dumps(info))
    with (dataset / "manifest.csv").open(newline="") as f:
        by_old = [row[0] for row in list(csv.reader(f))[1:]]
    with np.load(folder / "latents.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["ids"] = np.array(by_old[: len(arrays["ids"])])
    np.savez(folder / "latents.npz", **arrays)


@pytest.fixture(scope="module")
def hostile_text_root(studio_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The studio workspace with hostile text in its dataset and checkpoint, a newer
    checkpoint whose epoch is a link, a newer dataset whose clip count is one, and a source
    folder whose clip's file name is a tag."""
    root = tmp_path_factory.mktemp("hostile-text") / "ws"
    shutil.copytree(studio_root, root)
    dataset, ckpt = root / "data" / "demo", root / "checkpoints" / "demo"
    _hostile_checkpoint(ckpt, _hostile_dataset(dataset), dataset)
    evil = root / "checkpoints" / "evil"
    shutil.copytree(ckpt, evil)
    info = json.loads((evil / "config.json").read_text())
    info["epoch"] = f"{BEACON} {LINK}"
    (evil / "config.json").write_text(json.dumps(info))
    evil_data = root / "data" / "evil"
    shutil.copytree(dataset, evil_data)
    info = json.loads((evil_data / "config.json").read_text())
    info["counts"]["kept"] = LINK
    (evil_data / "config.json").write_text(json.dumps(info))
    later = time.time() + 60
    for newest in (evil, evil_data):  # the newest of their kind: once, the current ones
        os.utime(newest, (later, later))
    source = root / "data" / "sources" / "clips"
    source.mkdir(parents=True)
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(4000) / 8000)
    sf.write(source / "<img src=x onerror=alert(1)> [a](http:evil.example).wav", tone, 8000)
    return root


def _nodes(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _nodes(child)


def _outside_code(text: str) -> str:
    """Markdown source as it renders, roughly: code spans and escaped characters removed."""
    text = re.sub(r"(`+)(.+?)\1", "", text)
    return re.sub(r"\\.", "", text).replace(JOINER + "//", "")


def _live_text(at) -> list[tuple[str, str]]:
    """(element type, text) of every Markdown-rendered field holding a live link or tag."""
    found = []
    for node in _nodes(at._tree):
        proto = getattr(node, "proto", None)
        if proto is None or not hasattr(proto, "DESCRIPTOR"):
            continue
        names = proto.DESCRIPTOR.fields_by_name
        texts = [getattr(proto, f) for f in FIELDS if f in names]
        if node.type == "radio":
            texts += list(proto.options)
        for text in texts:
            if isinstance(text, str) and any(m in _outside_code(text).lower() for m in LIVE):
                found.append((node.type, text))
    return found


def _chart_tags(at) -> list[str]:
    """Tags plotly would draw: in any figure's text, names, titles (not its customdata)."""
    found = []
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        for trace in spec["data"]:
            trace.pop("customdata", None)
        text = json.dumps(spec, ensure_ascii=False).replace("<extra>", "").replace("</extra>", "")
        found += [tag for tag in TAGS if tag in text]
    return found


def _check(at, page: str) -> None:
    assert not at.exception, (page, at.exception)
    assert _live_text(at) == [], (page, _live_text(at))
    assert _chart_tags(at) == [], (page, _chart_tags(at))


@pytest.fixture
def hostile_text(hostile_text_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(hostile_text_root)
    return hostile_text_root


def test_a_non_numeric_epoch_or_count_marks_the_folder_damaged_and_never_current(
    hostile_text: Path,
) -> None:
    from vae.workspace import list_checkpoints, list_datasets

    ckpts = {str(i.path): i for i in list_checkpoints()}
    datasets = {str(i.path): i for i in list_datasets()}
    assert ckpts["checkpoints/evil"].damaged and not ckpts["checkpoints/demo"].damaged
    assert "epoch is not a whole number" in ckpts["checkpoints/evil"].summary
    assert datasets["data/evil"].damaged and not datasets["data/demo"].damaged
    assert "counts.kept is not a whole number" in datasets["data/evil"].summary
    at = open_page("home")
    _check(at, "home")
    # newest on disk, yet a new session opens the good ones
    assert at.sidebar.selectbox(key="sidebar-checkpoint").value == "checkpoints/demo"
    assert at.sidebar.selectbox(key="sidebar-dataset").value == "data/demo"
    [evil] = [m.value for m in at.markdown if m.value.startswith("`checkpoints/evil`")]
    assert evil.startswith("`checkpoints/evil` — damaged: config.json: epoch is not a whole")
    assert "current" not in evil


@pytest.mark.parametrize("page", ["home", "train", "explore", "synthesise", "evaluate"])
def test_hostile_labels_and_ids_are_shown_escaped(page: str, hostile_text: Path) -> None:
    at = open_page(page, **{"train-last-folder": "demo", "studio-selected": [f"{BEACON} #0"]})
    _check(at, page)
    if page == "evaluate":  # the report names the clips and the phase
        at.button(key="evaluate-run").click().run()
        _check(at, "evaluate after a run")
    if page == "explore":  # the picked clip's heading: its id, label and speaker
        headings = [h.value for h in at.subheader]
        assert any(h.startswith("!\\[b\\](http:" + JOINER + "//") for h in headings), headings


def test_interpolate_and_dataset_show_hostile_names_escaped(hostile_text: Path) -> None:
    at = open_page("interpolate")
    _check(at, "interpolate")
    at.button(key="interp-morph").click().run()
    _check(at, "interpolate with a morph")
    source = hostile_text / "data" / "sources" / "clips"
    at = open_page("dataset", **{"dataset-source": str(source)})
    _check(at, "dataset")
