"""Dataset page (AppTest on the real app): every source, the live preview, preprocess, errors."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import shutil
import socket
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.apptest import audio_urls, chart_traces, open_page

SOURCES = Path("data/sources")


def _spectrogram(at) -> np.ndarray:
    return chart_traces(at, "dataset-spec-fig")[0]["z"]  # (bins, frames)


def _table(at, column: str):
    """The first table on the page with ``column`` (dataframes carry no key in AppTest)."""
    frames = [f.value for f in at.dataframe if column in f.value.columns]
    assert frames, f"no table with a {column!r} column"
    return frames[0]


def _texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


@pytest.mark.slow
def test_demo_set_preview_follows_the_parameters_and_preprocess_selects_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    at = open_page("dataset")
    assert not at.exception
    assert "Choose a source of clips" in _texts(at.info)

    at.number_input(key="dataset-demo-n").set_value(4)
    at.button(key="dataset-demo").click().run()
    assert not at.exception and not at.error
    demo = SOURCES / at.session_state["dataset-demo-folder"]  # this session's own
    assert demo.name.startswith("demo-")
    assert len(list((tmp_path / demo).rglob("*.wav"))) == 20
    assert f"`{demo}` (20 audio files)" in _texts(at.markdown)
    # Preview under the default fsdd preset: 128 bins x 128 frames, a waveform and a player.
    assert _spectrogram(at).shape == (128, 128)
    wave = chart_traces(at, "dataset-wave-fig")[0]["y"]
    assert 0.98 < np.abs(wave).max() <= 1.0  # peak-normalised, as stored
    assert len(audio_urls(at)) == 1
    first = _spectrogram(at)

    at.selectbox(key="dataset-n-fft").set_value(512).run()
    assert _spectrogram(at).shape == (256, 128)
    at.selectbox(key="dataset-preset").set_value("seed").run()  # resets every value
    assert at.number_input(key="dataset-sample-rate").value == 22050
    assert at.selectbox(key="dataset-n-fft").value == 512
    assert at.number_input(key="dataset-hop").value == 256
    assert _spectrogram(at).shape == (256, 64)
    urls = audio_urls(at)
    at.selectbox(key="dataset-preset").set_value("fsdd").run()
    assert at.number_input(key="dataset-hop").value == 64
    assert audio_urls(at) != urls  # 8 kHz again: a new sound
    np.testing.assert_allclose(_spectrogram(at), first)
    clip = at.selectbox(key="dataset-clip")
    clip.set_value(clip.options[-1]).run()
    assert not np.allclose(_spectrogram(at), first)

    at.number_input(key="dataset-hop").set_value(4000).run()  # a user error, not a traceback
    assert not at.exception
    assert "hop_length=4000 must be in 1..n_fft (256)" in _texts(at.error)
    assert "Change that value above" in _texts(at.error)
    assert not at.get("plotly_chart")
    at.number_input(key="dataset-hop").set_value(64).run()

    assert at.text_input(key="dataset-name").value == "demo"
    at.button(key="dataset-preprocess").click().run()
    assert not at.exception and not at.error
    feats = np.load(tmp_path / "data/demo/features.npy")
    assert feats.shape == (20, 128, 128)
    assert "Kept 20 clips from 20 files" in _texts(at.success)
    assert at.session_state["studio-dataset"] == "data/demo"
    assert at.sidebar.selectbox[0].value == "data/demo"
    per_label = _table(at, "clips")
    assert dict(zip(per_label["label"], per_label["clips"], strict=True)) == {
        "falling": 4, "noise": 4, "pulses": 4, "rising": 4, "tone": 4,
    }  # fmt: skip
    assert all("file" not in f.value.columns for f in at.dataframe)  # nothing refused

    # No refused files, no widget-state warnings: only that pressing again would replace it.
    assert [w.value for w in at.warning] == [
        "data/demo: already holds a dataset (20 clips from this same source). "
        "Preprocessing replaces it."
    ]

    at.number_input(key="dataset-top-db").set_value(60.0).run()
    at.switch_page("app_pages/home.py").run()  # widget values are dropped on the way...
    at.switch_page("app_pages/dataset.py").run()  # ...and restored from the page's own keys
    assert at.number_input(key="dataset-top-db").value == 60.0
    assert at.number_input(key="dataset-hop").value == 64
    assert at.selectbox(key="dataset-preset").value == "fsdd"
    assert at.selectbox(key="dataset-n-fft").value == 256
    assert "Kept 20 clips from 20 files" in _texts(at.success)
    assert _spectrogram(at).shape == (128, 128)

    at.text_input(key="dataset-name").set_value("../escape").run()
    at.button(key="dataset-preprocess").click().run()
    assert "is not a usable folder name" in _texts(at.error)
    assert not (tmp_path / "escape").exists()


def test_folder_source_lists_refused_files_and_bad_folders_are_errors(
    tmp_path, monkeypatch, demo_set_dir
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VAE_DATA_ROOTS", str(tmp_path))  # the folders below are not in data/
    clips = shutil.copytree(demo_set_dir, tmp_path / "clips")
    (clips / "tone" / "broken.wav").write_bytes(b"RIFF not really a wave file")
    at = open_page("dataset")

    at.text_input(key="dataset-folder").set_value(str(tmp_path / "nowhere"))
    at.button(key="dataset-use-folder").click().run()
    assert not at.exception
    assert "nowhere: not a folder" in _texts(at.error)
    (tmp_path / "empty").mkdir()
    at.text_input(key="dataset-folder").set_value(str(tmp_path / "empty"))
    at.button(key="dataset-use-folder").click().run()
    assert "no audio files in this folder" in _texts(at.error)

    at.text_input(key="dataset-folder").set_value(str(clips))
    at.button(key="dataset-use-folder").click().run()
    assert not at.error
    assert "(30 audio files; 1 left out (empty or not audio: `tone/broken.wav`))" in _texts(
        at.markdown
    )
    at.button(key="dataset-preprocess").click().run()
    assert not at.exception and not at.error
    assert np.load(tmp_path / "data/clips/features.npy").shape == (30, 128, 128)
    assert "Kept 30 clips from 31 files" in _texts(at.success)
    assert "1 file refused" in _texts(at.warning)
    refused = _table(at, "file")
    assert list(refused["file"]) == ["tone/broken.wav"]
    assert refused["reason"][0]


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_zip_upload_refuses_escaping_entries(tmp_path, monkeypatch, write_tone):
    wav = write_tone(tmp_path / "in" / "a.wav").read_bytes()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    at = open_page("dataset")
    data = _zip({"set/a.wav": wav, "set/b.wav": wav, "../evil.wav": wav, "../../evil2.wav": wav})
    at.file_uploader(key="dataset-upload").set_value([("set.zip", data, "application/zip")])
    at.run()
    at.button(key="dataset-import").click().run()
    assert not at.exception and not at.error
    target = work / SOURCES / at.session_state["dataset-upload-folder"]  # this session's own
    # Only the good entries, the zip's wrapper folder "set" lifted away.
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*.wav")) == [
        "a.wav",
        "b.wav",
    ]
    assert not list(tmp_path.rglob("evil*.wav"))  # nothing written outside the target
    assert "skipped 2" in _texts(at.warning)
    skipped = _table(at, "entry")
    assert dict(zip(skipped["entry"], skipped["reason"], strict=True)) == {
        "../evil.wav": "path leaves the folder (..)",
        "../../evil2.wav": "path leaves the folder (..)",
    }
    assert "(2 audio files)" in _texts(at.markdown)

    only_evil = _zip({"../evil.wav": wav})
    assert not at.get("file_uploader")[0].value  # emptied: the bytes are on disk, not held
    at.file_uploader(key="dataset-upload-1").set_value([("evil.zip", only_evil, "application/zip")])
    at.run()
    at.button(key="dataset-import").click().run()
    assert not at.exception
    assert "evil.zip: no audio files" in _texts(at.error)
    assert "../evil.wav: path leaves the folder" in _texts(at.error)
    assert not list(tmp_path.rglob("evil*.wav"))


@pytest.fixture
def fsdd_server(tmp_path, write_tone):
    """(base URL, SHA-256) of a local server holding a tiny FSDD-shaped release archive."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for i, name in enumerate(["3_theo_0.wav", "5_george_1.wav"]):
            path = write_tone(tmp_path / "rel" / name, freq=250.0 + 150 * i)
            tf.add(path, f"free-spoken-digit-dataset-1.0.9/recordings/{name}")
    served = tmp_path / "served"
    served.mkdir()
    (served / "fsdd.tar.gz").write_bytes(buf.getvalue())

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(served))
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hashlib.sha256(buf.getvalue()).hexdigest()
    httpd.shutdown()
    httpd.server_close()


def test_download_fsdd_button_and_the_offline_error(tmp_path, monkeypatch, fsdd_server):
    base, sha = fsdd_server
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("VAE_FSDD_URL", f"http://127.0.0.1:{closed}/fsdd.tar.gz")
    monkeypatch.setenv("VAE_FSDD_SHA256", sha)
    at = open_page("dataset")
    at.button(key="dataset-fsdd").click().run()
    assert not at.exception
    error = _texts(at.error).replace("\u2060", "")  # links broken with a joiner (safe_text)
    assert f"http://127.0.0.1:{closed}/fsdd.tar.gz: could not download" in error
    assert "download it by hand" in error
    assert not (work / SOURCES / "fsdd").exists()

    monkeypatch.setenv("VAE_FSDD_URL", f"{base}/fsdd.tar.gz")
    at.button(key="dataset-fsdd").click().run()
    assert not at.exception and not at.error
    assert sorted(p.name for p in (work / SOURCES / "fsdd").glob("*.wav")) == [
        "3_theo_0.wav",
        "5_george_1.wav",
    ]
    bars = at.get("progress")
    assert bars and bars[-1].proto.value == 100
    assert "`data/sources/fsdd` (2 audio files)" in _texts(at.markdown)
    at.button(key="dataset-preprocess").click().run()
    assert not at.error
    assert np.load(work / "data/fsdd/features.npy").shape == (2, 128, 128)
    per_label = _table(at, "clips")
    assert list(per_label["label"]) == ["3", "5"]  # the fsdd label rule, found by auto


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.slow
def test_preprocessing_into_an_existing_dataset_asks_first_naming_its_checkpoints(studio_copy):
    """Issue 24, finding 1: Generate demo set then Preprocess under the name of a dataset a
    checkpoint was trained on replaced it without a word."""
    config = studio_copy / "checkpoints/demo/config.json"
    info = json.loads(config.read_text())
    info["dataset"]["path"] = "data/demo"  # as a run trained in this workspace records it
    config.write_text(json.dumps(info))
    before = _files(studio_copy / "data/demo")
    at = open_page("dataset")
    at.number_input(key="dataset-demo-n").set_value(2).run()
    at.button(key="dataset-demo").click().run()
    assert at.text_input(key="dataset-name").value == "demo"
    warning = _texts(at.warning)
    assert "data/demo: already holds a dataset (30 clips from " in warning
    assert "checkpoints trained on it: checkpoints/demo" in warning
    assert "would then point at other data" in warning
    assert at.checkbox(key="dataset-replace-demo").label == "Replace dataset `demo`"
    assert at.button(key="dataset-preprocess").disabled  # until it is ticked
    assert _files(studio_copy / "data/demo") == before

    at.text_input(key="dataset-name").set_value("fresh").run()  # a new name: nothing to ask
    assert not at.warning and not at.button(key="dataset-preprocess").disabled
    at.text_input(key="dataset-name").set_value("demo").run()
    at.checkbox(key="dataset-replace-demo").check().run()
    assert not at.button(key="dataset-preprocess").disabled
    at.button(key="dataset-preprocess").click().run()
    assert not at.exception and not at.error
    assert "Kept 10 clips from 10 files" in _texts(at.success)
    assert np.load(studio_copy / "data/demo/features.npy").shape[0] == 10
    assert not at.checkbox(key="dataset-replace-demo").value  # the next one asks again
    assert at.button(key="dataset-preprocess").disabled


def test_the_source_counts_only_audio_and_previews_the_first_readable_clip(
    tmp_path, monkeypatch, write_tone
):
    """Issue 24, finding 10: "6 audio files" counted a text file and an empty one named .wav,
    and the preview opened on the broken one."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VAE_DATA_ROOTS", str(tmp_path))
    clips = tmp_path / "clips"
    (clips / "a-empty.wav").parent.mkdir()
    (clips / "a-empty.wav").write_bytes(b"")
    (clips / "b-notes.wav").write_text("meeting notes, saved with the wrong name")
    for i in range(4):
        write_tone(clips / f"c-tone{i}.wav", freq=300.0 + 100 * i)
    at = open_page("dataset")
    at.text_input(key="dataset-folder").set_value(str(clips))
    at.button(key="dataset-use-folder").click().run()
    assert not at.exception and not at.error
    source = _texts(at.markdown)
    assert (
        "(4 audio files; 2 left out (empty or not audio: `a-empty.wav`, `b-notes.wav`))" in source
    )
    assert at.selectbox(key="dataset-clip").value == "c-tone0.wav"
    assert at.selectbox(key="dataset-clip").options == [f"c-tone{i}.wav" for i in range(4)]
    assert _spectrogram(at).shape == (128, 128)  # the preview drew
