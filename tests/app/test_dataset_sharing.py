"""The Dataset page shared by several visitors (issue 23, findings 3, 4 and 14), in AppTest
on the real app: uploads within stated sizes and let go of once on disk, each session's
folders private and removed when it ends, "Folder on disk" only inside the configured
roots, the demo set per session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.apptest import open_page
from ui import session_files
from vae.storage.data_roots import ROOTS_ENV

pytest.importorskip("streamlit.testing.v1")
SOURCES = Path("data/sources")


def _texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def _upload(at, name: str, data: bytes) -> None:
    """Put one file in the page's uploader (whatever its key this round) and run."""
    at.get("file_uploader")[0].set_value([(name, data, "audio/wav")])
    at.run()


def _import(at, name: str, data: bytes) -> None:
    _upload(at, name, data)
    at.button(key="dataset-import").click().run()


def _use_folder(at, path: str | Path) -> None:
    at.text_input(key="dataset-folder").set_value(str(path))
    at.button(key="dataset-use-folder").click().run()


def _private(root: Path) -> list[str]:
    return sorted(p.name for p in (root / SOURCES).iterdir() if p.name.startswith(("up", "de")))


@pytest.fixture
def tone(tmp_path: Path, write_tone) -> bytes:
    """A 1 s 8 kHz 16-bit WAV: about 16 KB."""
    return write_tone(tmp_path / "tone.wav", seconds=1.0).read_bytes()


# ------------------------------------------------------------------------------ uploads
def test_an_upload_over_the_import_size_is_refused_in_one_line_and_let_go(
    work: Path, tone: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAE_IMPORT_MB", "0.01")  # 10 KB: the 16 KB tone is past it
    at = open_page("dataset")
    _upload(at, "tone.wav", tone)
    assert not at.exception
    [error] = [e.value for e in at.error]
    assert error.startswith("this upload is 0.02 MB, over the 0.01 MB one import may hold")
    assert "(VAE_IMPORT_MB); upload fewer or smaller files" in error
    at.run()
    assert not at.get("file_uploader")[0].value  # a fresh uploader: the bytes are let go
    assert not (work / SOURCES).exists() or not _private(work)

    monkeypatch.setenv("VAE_IMPORT_MB", "1")
    _import(at, "tone.wav", tone)  # within the size: accepted
    assert not at.error and not at.exception
    assert not at.get("file_uploader")[0].value  # on disk, not held by the session
    target = work / SOURCES / at.session_state["dataset-upload-folder"]
    assert [p.name for p in target.iterdir() if not p.name.startswith(".")] == ["tone.wav"]


def test_the_session_size_and_the_sources_quota_are_refused_in_one_line(
    work: Path, tone: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page("dataset")
    at.number_input(key="dataset-demo-n").set_value(2)
    at.button(key="dataset-demo").click().run()  # 10 clips of this session's own: ~90 KB
    assert not at.error and not at.exception
    monkeypatch.setenv("VAE_SESSION_MB", "0.1")
    _import(at, "tone.wav", tone)
    [error] = [e.value for e in at.error]
    assert error.startswith("this session keeps 0.") and "adds 0.02 MB, over the 0.10 MB" in error
    assert "(VAE_SESSION_MB); upload less" in error
    assert (
        "dataset-upload-folder" not in at.session_state
        or not (work / SOURCES / at.session_state["dataset-upload-folder"]).exists()
    )

    monkeypatch.delenv("VAE_SESSION_MB")
    monkeypatch.setenv("VAE_SOURCES_MB", "0.1")
    (work / SOURCES / "fsdd").mkdir()
    (work / SOURCES / "fsdd" / "other.bin").write_bytes(b"\0" * 50_000)
    _import(at, "tone.wav", tone)
    [error] = [e.value for e in at.error]
    assert error.startswith("data/sources would hold 0.1")
    assert "over the 0.10 MB allowed for every visitor's clips together (VAE_SOURCES_MB)" in error
    at.button(key="dataset-demo").click().run()
    assert "(VAE_SOURCES_MB)" in _texts(at.error)


def _live_elsewhere() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return int(done.stdout)


def _leftover(root: Path, name: str, pid: int | None) -> Path:
    """A private folder with one clip, owned by ``pid`` (no owner mark when None)."""
    folder = root / SOURCES / name
    folder.mkdir(parents=True)
    (folder / "clip.wav").write_bytes(b"RIFF")
    if pid is not None:
        (root / SOURCES / f".{name}.owner").write_text(json.dumps({"pid": pid, "session": "x"}))
    return folder


def test_session_folders_go_when_the_session_ends_and_leftovers_at_start_up(
    work: Path, tone: bytes
) -> None:
    other = _live_elsewhere()  # another server process on this workspace: its folder stays
    try:
        _leftover(work, "upload-0000dead", _dead_pid())
        _leftover(work, "demo-00000000", None)  # from before owner marks
        kept = _leftover(work, "upload-0011ve00", other.pid)
        at = open_page("dataset")
        _import(at, "tone.wav", tone)  # the first folder made sweeps what was left over
        assert not at.error and not at.exception
        at.number_input(key="dataset-demo-n").set_value(2)
        at.button(key="dataset-demo").click().run()
        own = [at.session_state[k] for k in ("dataset-upload-folder", "dataset-demo-folder")]
        assert _private(work) == sorted([*own, kept.name])

        assert session_files.sweep(work / SOURCES, alive=lambda session: True) == []
        assert _private(work) == sorted([*own, kept.name])
        # The session ends (no longer connected past the grace time): its folders go.
        removed = session_files.sweep(work / SOURCES, alive=lambda session: False)
        assert sorted(p.name for p in removed) == sorted(own)
        assert _private(work) == [kept.name]
        assert sorted(p.name for p in (work / SOURCES).glob(".*.owner")) == [f".{kept.name}.owner"]
    finally:
        other.kill()
        other.wait()
    session_files.sweep(work / SOURCES, alive=lambda session: True)  # its server has ended
    assert _private(work) == []


def test_liveness_waits_for_the_grace_time_outside_a_server() -> None:
    """Outside a Streamlit server nothing says a session ended: every folder is kept."""
    assert session_files.Liveness(grace_s=0.0)("any session")


# ------------------------------------------------------------------------------ roots
def test_folder_on_disk_reads_only_inside_the_roots_and_never_another_sessions_upload(
    work: Path, tmp_path: Path, tone: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = open_page("dataset"), open_page("dataset")
    _import(alice, "alice.wav", tone)
    hers = work / SOURCES / alice.session_state["dataset-upload-folder"]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.wav").write_bytes(tone)
    (work / "data" / "clips").mkdir(parents=True)
    (work / "data" / "clips" / "mine.wav").write_bytes(tone)
    (work / "data" / "escape").symlink_to(outside)

    refusals = {
        str(hers): "another session's upload folder; upload your own clips on the Upload tab",
        str(SOURCES / hers.name): "another session's upload folder",
        str(SOURCES): "holds the sessions' own upload folders",
        "data": "holds the sessions' own upload folders",
        "/etc": f"outside the folders the app may read ({work / 'data'}); choose a folder",
        "data/clips/../..": "outside the folders the app may read",
        "data/escape": "outside the folders the app may read",
    }
    for path, why in refusals.items():
        _use_folder(bob, path)
        assert not bob.exception
        [error] = [e.value for e in bob.error]
        assert error.startswith(f"{path}: ") and why in error, (path, error)
        assert f"set {ROOTS_ENV} (folders separated by" in error or "outside" not in why
        assert "dataset-source" not in bob.session_state

    _use_folder(bob, "data/clips")  # inside the roots: accepted
    assert not bob.error
    assert bob.session_state["dataset-source"] == str(work / "data" / "clips")
    _use_folder(alice, hers)  # her own upload folder is hers to read
    assert not alice.error
    monkeypatch.setenv(ROOTS_ENV, f"{outside}{os.pathsep}data")
    _use_folder(bob, "data/escape")  # the operator named it: now inside
    assert not bob.error
    assert bob.session_state["dataset-source"] == str(outside)


# ------------------------------------------------------------------------------ demo set
def test_two_sessions_generating_the_demo_set_each_get_only_their_own_clips(work: Path) -> None:
    alice, bob = open_page("dataset"), open_page("dataset")
    for at, n in ((alice, 2), (bob, 3)):
        at.number_input(key="dataset-demo-n").set_value(n)
        at.button(key="dataset-demo").click().run()
        assert not at.error and not at.exception
    theirs = {at.session_state["dataset-demo-folder"] for at in (alice, bob)}
    assert len(theirs) == 2
    for at, n in ((alice, 2), (bob, 3)):
        folder = work / SOURCES / at.session_state["dataset-demo-folder"]
        assert len(list(folder.rglob("*.wav"))) == 5 * n
        assert Path(at.session_state["dataset-source"]).resolve() == folder
    assert not (work / SOURCES / "demo").exists()
