"""The Streamlit app loads and lists what is on disk (AppTest, a real Streamlit runtime)."""

import json
from pathlib import Path

import pytest

streamlit_testing = pytest.importorskip("streamlit.testing.v1")
ROOT = Path(__file__).resolve().parents[1]


def test_home_page_lists_datasets_and_suggests_next_step(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    at = streamlit_testing.AppTest.from_file(str(ROOT / "app_pages/home.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert "Datasets (0)" in [h.value for h in at.subheader]
    assert "demo-data" in at.code[0].value

    ds = tmp_path / "data" / "mine"
    ds.mkdir(parents=True)
    (ds / "features.npy").write_bytes(b"")
    info = {"counts": {"kept": 12}, "label_names": ["a", "b"]}
    info["feature_config"] = {"sample_rate": 8000}
    (ds / "config.json").write_text(json.dumps(info))
    at.run()
    assert "Datasets (1)" in [h.value for h in at.subheader]
    assert any("12 clips, 2 labels, 8000 Hz" in m.value for m in at.markdown)
    assert "python -m vae train data/mine" in at.code[0].value


def test_app_entry_opens_on_home(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    at = streamlit_testing.AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert at.title[0].value == "Sound VAE Studio"
