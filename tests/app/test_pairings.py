"""Every pairing of dataset and checkpoint the sidebar allows, on every page that uses both
(issue 24, item 2 and acceptance 3): each page shows its full controls, or exactly one line
that names the way out; never an exception, never a page cut short by a red box.

The pairings: a conditional checkpoint with its own dataset; the same checkpoint with a
dataset of the same features but other labels; an unconditional checkpoint with a labelled
dataset; the shipped checkpoint alone (no data/ at all, as on a fresh clone); a dataset with
no checkpoint. Plus the shipped-only export (acceptance 4) and Evaluate's warning when the
current dataset shares clips with the checkpoint's own (item 6).
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from tests.apptest import open_page
from vae.audio.features import FeatureConfig

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "checkpoints" / "fsdd-digits"
PAGES = ("interpolate", "explore", "synthesise", "evaluate")
CFG = FeatureConfig(sample_rate=8000, clip_samples=4096, n_fft=256, hop_length=128)


@pytest.fixture(scope="module")
def pairs_root(studio_root: Path, demo_set_dir: Path, tmp_path_factory) -> Path:
    """The studio workspace plus ``data/other`` (the demo clips under other label names,
    same features), ``data/small`` (a smaller demo set: other fingerprint, clip names the
    demo checkpoint knows) and ``checkpoints/plain`` (an unconditional VAE on data/demo)."""
    from vae.data.dataset import preprocess
    from vae.data.sources import make_demo_set
    from vae.training.train import train
    from vae.training.train_config import TrainConfig

    root = tmp_path_factory.mktemp("pairs") / "studio"
    shutil.copytree(studio_root, root)
    renamed = tmp_path_factory.mktemp("renamed")
    for i, folder in enumerate(sorted(p for p in demo_set_dir.iterdir() if p.is_dir())):
        shutil.copytree(folder, renamed / f"kind{i}")
    preprocess(renamed, root / "data" / "other", CFG, labels="folder", val_fraction=0.2)
    small = make_demo_set(tmp_path_factory.mktemp("small") / "small", n_per_class=2, seed=0)
    preprocess(small, root / "data" / "small", CFG, val_fraction=0.5, seed=0)
    train(
        root / "data" / "demo",
        root / "checkpoints" / "plain",
        train_config=TrainConfig(epochs=1, batch_size=8, log_every=1, device="cpu", threads=1),
        model_overrides={"channels": (8, 16), "latent_dim": 4, "conditional": False},
    )
    return root


@pytest.fixture(scope="module")
def shipped_root(tmp_path_factory) -> Path:
    """A fresh clone's state: only checkpoints/fsdd-digits, no data/ (a copy: exports and
    the sweeper write nothing beside it, but a test may)."""
    root = tmp_path_factory.mktemp("shipped")
    shutil.copytree(SHIPPED, root / "checkpoints" / SHIPPED.name)
    return root


@pytest.fixture(scope="module")
def data_only_root(studio_root: Path, tmp_path_factory) -> Path:
    """A dataset and no checkpoint: data/demo alone."""
    root = tmp_path_factory.mktemp("data-only")
    shutil.copytree(studio_root / "data", root / "data")
    return root


def _open(root: Path, page: str, dataset: str | None, checkpoint: str | None, monkeypatch):
    monkeypatch.chdir(root)
    state = {}
    if dataset:
        state["studio-dataset"] = dataset
    if checkpoint:
        state["studio-checkpoint"] = checkpoint
    return open_page(page, **state)


def _full(at, page: str) -> bool:
    """Whether ``page`` shows its full controls (Interpolate: A, B, α and the morph)."""
    keys = {w.key for kind in ("radio", "selectbox", "slider", "button") for w in at.get(kind)}
    charts = {c.proto.id for c in at.get("plotly_chart")}
    if page == "interpolate":
        wanted = {"interp-a-source", "interp-b-source", "interp-alpha", "interp-morph"}
        return wanted <= keys and any("interp-spectrograms" in c for c in charts)
    if page == "explore":
        return any("explore-map" in c for c in charts)
    if page == "synthesise":
        return "synth-random" in keys and any("synth-spectrogram" in c for c in charts)
    # evaluate: a run to press, or the stored figures of a checkpoint without its dataset
    return "evaluate-run" in keys or any("evaluate-bars" in c for c in charts)


# (root fixture, dataset, checkpoint) and, per page, "full" or the way out one line names
PAIRINGS = {
    "conditional+own": ("pairs_root", "data/demo", "checkpoints/demo", {}),
    "conditional+other-labels": (
        "pairs_root",
        "data/other",
        "checkpoints/demo",
        {"evaluate": "pick the dataset it was trained on in the sidebar"},
    ),
    "unconditional+labelled": ("pairs_root", "data/demo", "checkpoints/plain", {}),
    "shipped-only": ("shipped_root", None, None, {}),
    "dataset-only": (
        "data_only_root",
        None,
        None,
        dict.fromkeys(PAGES, "train one on the **Train** page"),
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("pairing", list(PAIRINGS))
def test_every_pairing_shows_the_page_or_one_line_with_the_way_out(
    pairing: str, page: str, request, monkeypatch
) -> None:
    fixture, dataset, checkpoint, lines = PAIRINGS[pairing]
    at = _open(request.getfixturevalue(fixture), page, dataset, checkpoint, monkeypatch)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    if page in lines:
        said = [m.value for m in [*at.info, *at.warning] if lines[page] in m.value]
        assert len(said) == 1, [m.value for m in [*at.info, *at.warning]]
        assert not _full(at, page)
    else:
        assert _full(at, page), [m.value for m in [*at.info, *at.warning]]


@pytest.mark.slow
def test_interpolate_with_foreign_labels_encodes_the_clips_as_the_label_chosen(
    pairs_root: Path, monkeypatch
) -> None:
    """Clips of labels the conditional checkpoint does not know are picked anyway; each end
    asks which of the checkpoint's labels to encode it with, and the page says so once."""
    at = _open(pairs_root, "interpolate", "data/other", "checkpoints/demo", monkeypatch)
    assert not at.exception and not at.error
    said = [i.value for i in at.info if "does not know the labels" in i.value]
    assert len(said) == 1 and "pick the dataset it was trained on in the sidebar" in said[0]
    names = at.selectbox(key="interp-a-mlabel").options
    assert names == ["falling", "noise", "pulses", "rising", "tone"]  # the checkpoint's
    at.selectbox(key="interp-b-mlabel").set_value("tone").run()
    assert not at.exception and not at.error
    at.slider(key="interp-alpha").set_value(0.75).run()
    assert any("mix at α = 0.75" in c.value for c in at.caption)


@pytest.mark.slow
def test_shipped_checkpoint_alone_exports_from_the_sidebar(shipped_root: Path, monkeypatch):
    """Acceptance 4: only checkpoints/fsdd-digits, no data/: the sidebar's Download / export
    offers the checkpoint's zip at once and its ONNX export one click away, on any page."""
    from tests.app.test_page_train import _note_downloads

    clicks = _note_downloads(monkeypatch)
    at = _open(shipped_root, "home", None, None, monkeypatch)
    assert not at.exception
    labels = [d.proto.label for d in at.sidebar.get("download_button")]
    assert labels == ["Download checkpoint fsdd-digits.zip"]
    with zipfile.ZipFile(io.BytesIO(clicks["fsdd-digits.zip"]())) as zf:
        assert "fsdd-digits/config.json" in zf.namelist()

    at.sidebar.button(key="sidebar-export").click().run()
    assert not at.exception and not at.error
    labels = [d.proto.label for d in at.sidebar.get("download_button")]
    assert labels[1] == "Download export-fsdd-digits-onnx.zip"
    with zipfile.ZipFile(io.BytesIO(clicks["export-fsdd-digits-onnx.zip"]())) as zf:
        files = {Path(n).name for n in zf.namelist()}
    assert {"decoder.onnx", "encoder.onnx", "export.json"} <= files

    at.switch_page("app_pages/train.py").run()  # where a person looks first: it points there
    assert "open **Download / export** in the sidebar" in at.info[0].value
    assert at.sidebar.button(key="sidebar-export")  # and it is there, on this page too


def _layout(at, key: str) -> dict:
    chart = next(c for c in at.get("plotly_chart") if key in c.proto.id)
    return json.loads(chart.proto.spec)["layout"]


@pytest.mark.slow
def test_evaluate_ticks_every_digit(shipped_root: Path, monkeypatch) -> None:
    """Item 6: the shipped checkpoint's stored figures label all ten digits on the bars and
    both axes of the confusion matrix (plotly read "0".."9" as numbers: ticks 0, 2, 4...)."""
    at = _open(shipped_root, "evaluate", None, None, monkeypatch)
    assert not at.exception
    digits = [str(d) for d in range(10)]
    assert _layout(at, "evaluate-bars")["xaxis"]["tickvals"] == digits
    matrix = _layout(at, "evaluate-confusion")
    assert matrix["xaxis"]["tickvals"] == digits and matrix["yaxis"]["tickvals"] == digits


@pytest.mark.slow
def test_evaluate_warns_when_the_dataset_holds_the_checkpoints_clips(
    pairs_root: Path, monkeypatch
) -> None:
    """Item 6: data/small is not the demo checkpoint's dataset, but its clips have the names
    of clips it was trained on: Evaluate warns (Explore says the same), its own does not."""
    at = _open(pairs_root, "evaluate", "data/small", "checkpoints/demo", monkeypatch)
    assert not at.exception
    warned = [w.value for w in at.warning]
    assert len(warned) == 1 and "may be among its training clips" in warned[0]
    assert "pick the dataset it was trained on in the sidebar" in warned[0]
    at = _open(pairs_root, "evaluate", "data/demo", "checkpoints/demo", monkeypatch)
    assert not at.warning


@pytest.mark.slow
def test_evaluate_offers_no_judge_of_other_labels(pairs_root: Path, tmp_path, monkeypatch):
    """Item 2: the shipped checkpoint's digit judge beside a dataset of other labels is not
    offered (Run ended in "no clips in split 'val' with the judge's labels"); Run works."""
    for part in ("data/demo", "checkpoints/plain"):
        shutil.copytree(pairs_root / part, tmp_path / part)
    shutil.copytree(SHIPPED, tmp_path / "checkpoints" / SHIPPED.name)
    at = _open(tmp_path, "evaluate", "data/demo", "checkpoints/plain", monkeypatch)
    assert not at.exception and not at.error
    assert at.selectbox(key="evaluate-judge").options == []
    assert any("1 judge(s) of other labels are not offered" in c.value for c in at.caption)
    at.button(key="evaluate-run").click().run()
    assert not at.exception and not at.error
    assert at.table  # the realism table of the report
