"""The app entry and Home page (AppTest, a real Streamlit runtime): what is on disk, the
current choice in the sidebar, and the next step."""

import json
import os
import shutil

import pytest

from tests.apptest import open_page


def test_empty_workspace_points_to_the_dataset_page(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    at = open_page("home")
    assert not at.exception
    assert at.title[0].value == "Sound VAE Studio"
    assert "Datasets (0)" in [h.value for h in at.subheader]
    assert at.info[0].value.startswith("No dataset yet")
    assert "python -m vae demo-data" in at.code[0].value
    captions = [c.value for c in at.sidebar.caption]
    assert captions[0].startswith("Dataset: none yet")


def test_a_dataset_without_a_model_suggests_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds = tmp_path / "data" / "mine"
    ds.mkdir(parents=True)
    (ds / "features.npy").write_bytes(b"")
    info = {"counts": {"kept": 12}, "label_names": ["a", "b"]}
    info["feature_config"] = {"sample_rate": 8000}
    (ds / "config.json").write_text(json.dumps(info))
    at = open_page("home")
    assert "Datasets (1)" in [h.value for h in at.subheader]
    assert any("12 clips, 2 labels, 8000 Hz ← current" in m.value for m in at.markdown)
    assert "data/mine" in at.info[0].value
    assert "python -m vae train data/mine" in at.code[0].value


@pytest.mark.slow
def test_sidebar_switches_the_current_checkpoint_on_every_page(studio_root, tmp_path, monkeypatch):
    shutil.copytree(studio_root, tmp_path / "ws")
    second = tmp_path / "ws" / "checkpoints" / "older"
    shutil.copytree(tmp_path / "ws" / "checkpoints" / "demo", second)
    os.utime(second / "config.json", (1, 1))  # older: listed second
    monkeypatch.chdir(tmp_path / "ws")
    at = open_page("home")
    picker = at.sidebar.selectbox(key="sidebar-checkpoint")
    assert picker.options == ["checkpoints/demo", "checkpoints/older"]
    assert "checkpoints/demo" in at.success[0].value
    picker.set_value("checkpoints/older").run()
    assert "checkpoints/older" in at.success[0].value
    at.switch_page("app_pages/synthesise.py").run()  # the choice survives a page switch
    assert at.sidebar.selectbox(key="sidebar-checkpoint").value == "checkpoints/older"
    assert at.session_state["studio-checkpoint"] == "checkpoints/older"


PAGES = ["home", "dataset", "train", "explore", "interpolate", "synthesise", "evaluate"]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_opens_in_an_empty_workspace_with_the_next_step(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    at = open_page(page)
    assert not at.exception and not at.error
    assert at.title[0].value == {"home": "Sound VAE Studio"}.get(page, page.capitalize())
    if page in ("train", "explore", "interpolate", "synthesise", "evaluate"):
        assert at.info[0].value.startswith("No ")  # what is missing and where to make it


@pytest.mark.parametrize("page", PAGES)
def test_every_page_opens_on_the_demo_workspace(page, studio_page):
    at = studio_page(page)
    assert not at.error
    assert at.sidebar.selectbox(key="sidebar-checkpoint").value == "checkpoints/demo"


def test_a_broken_checkpoint_is_an_error_with_the_fix_on_every_model_page(
    studio_root, tmp_path, monkeypatch
):
    shutil.copytree(studio_root, tmp_path / "ws")
    (tmp_path / "ws" / "checkpoints" / "demo" / "model.pt").write_bytes(b"truncated")
    monkeypatch.chdir(tmp_path / "ws")
    for page in ("explore", "interpolate", "synthesise"):
        at = open_page(page)
        assert not at.exception, page
        assert "model.pt" in at.error[0].value, page
