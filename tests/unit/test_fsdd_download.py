"""vae.data.fsdd: download, verify and unpack the FSDD archive, against a local server only.

No test touches the internet: a tiny FSDD-shaped tar.gz is served by ``http.server`` on
127.0.0.1, and "offline" is a port nobody listens on.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import socket
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from vae.data import fsdd

ROOT = Path(__file__).resolve().parents[2]
TOP = "free-spoken-digit-dataset-1.0.9"
RECORDINGS = ["0_jackson_0.wav", "1_theo_3.wav", "7_nicolas_12.wav"]


@pytest.fixture
def release(tmp_path: Path, write_tone) -> tuple[Path, str]:
    """An FSDD-like release archive: recordings, a README, a script and a stray WAV."""
    src = tmp_path / "src"
    for i, name in enumerate(RECORDINGS):
        write_tone(src / name, seconds=0.3, freq=300.0 + 100 * i)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name in RECORDINGS:
            tf.add(src / name, f"{TOP}/recordings/{name}")
        tf.add(src / RECORDINGS[0], f"{TOP}/acoustic/extra.wav")  # not a recording: skipped
        for name, text in [("README.md", b"# FSDD\n"), ("utils/fsdd.py", b"print(1)\n")]:
            info = tarfile.TarInfo(f"{TOP}/{name}")
            info.size = len(text)
            tf.addfile(info, io.BytesIO(text))
    served = tmp_path / "served"
    served.mkdir()
    path = served / "v1.0.9.tar.gz"
    path.write_bytes(buf.getvalue())
    return path, hashlib.sha256(buf.getvalue()).hexdigest()


@pytest.fixture
def server(release) -> Iterator[str]:
    """Base URL of an HTTP server on 127.0.0.1 serving the release's folder."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep the test output clean
            pass

    handler = functools.partial(Quiet, directory=str(release[0].parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # polled every 20 ms (not 0.5 s): shutdown at the end returns at once
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def closed_port() -> int:
    """A local port with nothing listening: connecting is refused at once, like offline."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fetch_keeps_only_the_recordings_and_reports_progress(tmp_path, release, server):
    path, sha = release
    calls: list[tuple[int, int]] = []
    out = tmp_path / "data" / "fsdd-clips"
    summary, got = fsdd.fetch_fsdd(
        out, f"{server}/v1.0.9.tar.gz", sha, progress=lambda d, t: calls.append((d, t))
    )
    size = path.stat().st_size
    assert got.verified and got.sha256 == sha and got.bytes == size
    assert sorted(summary.kept) == sorted(RECORDINGS)
    assert sorted(p.name for p in out.iterdir()) == sorted([".import.json", *RECORDINGS])
    skipped = dict(summary.skipped)
    assert skipped[f"{TOP}/acoustic/extra.wav"] == "not part of the dataset"
    assert f"{TOP}/README.md" in skipped and f"{TOP}/utils/fsdd.py" in skipped
    for name in RECORDINGS:  # byte-identical to what was packed
        assert (out / name).read_bytes() == (tmp_path / "src" / name).read_bytes()
    # Progress: starts at 0, never goes back, ends at the full size, total = Content-Length.
    assert calls[0] == (0, size) and calls[-1] == (size, size)
    done = [d for d, _ in calls]
    assert done == sorted(done) and {t for _, t in calls} == {size}
    # No temp download or temp folder is left beside the output.
    assert sorted(p.name for p in out.parent.iterdir()) == ["fsdd-clips"]


def test_checksum_mismatch_is_refused_and_leaves_nothing(tmp_path, release, server):
    out = tmp_path / "fsdd"
    wrong = "0" * 64
    with pytest.raises(fsdd.DownloadError, match=f"checksum mismatch .*expected {wrong}"):
        fsdd.fetch_fsdd(out, f"{server}/v1.0.9.tar.gz", wrong)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served", "src"]  # nor temp files


def test_offline_and_http_errors_name_the_url_and_the_fix(tmp_path, server, closed_port):
    url = f"http://127.0.0.1:{closed_port}/v1.0.9.tar.gz"
    with pytest.raises(fsdd.DownloadError) as err:
        fsdd.fetch_fsdd(tmp_path / "a", url, "0" * 64)
    assert str(err.value).startswith(f"{url}: could not download (")
    assert "check the connection, or download it by hand" in str(err.value)
    with pytest.raises(fsdd.DownloadError, match=r"missing.tar.gz: HTTP 404 .*check the conn"):
        fsdd.fetch_fsdd(tmp_path / "b", f"{server}/missing.tar.gz")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_url_and_checksum_come_from_args_env_or_the_pinned_release(monkeypatch):
    monkeypatch.delenv(fsdd.ENV_URL, raising=False)
    monkeypatch.delenv(fsdd.ENV_SHA256, raising=False)
    assert fsdd.resolve() == (fsdd.FSDD_URL, fsdd.FSDD_SHA256)
    assert fsdd.resolve("http://mirror/x.tgz") == ("http://mirror/x.tgz", None)
    monkeypatch.setenv(fsdd.ENV_URL, "http://env/x.tgz")
    monkeypatch.setenv(fsdd.ENV_SHA256, "AB" * 32)
    assert fsdd.resolve() == ("http://env/x.tgz", "ab" * 32)
    assert fsdd.resolve("http://arg/y.tgz", "cd" * 32) == ("http://arg/y.tgz", "cd" * 32)
    with pytest.raises(ValueError, match="not 64 hex digits"):
        fsdd.resolve(sha256="xyz")


def test_env_override_reaches_fetch(tmp_path, release, server, monkeypatch):
    monkeypatch.setenv(fsdd.ENV_URL, f"{server}/v1.0.9.tar.gz")
    monkeypatch.setenv(fsdd.ENV_SHA256, release[1])
    summary, got = fsdd.fetch_fsdd(tmp_path / "out")
    assert got.verified and len(summary.kept) == len(RECORDINGS)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vae", "fetch-fsdd", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_cli_fetch_fsdd_writes_recordings_and_fails_in_one_line(
    tmp_path, release, server, closed_port
):
    out = tmp_path / "clips"
    proc = _cli(str(out), "--url", f"{server}/v1.0.9.tar.gz", "--sha256", release[1])
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {len(RECORDINGS)} recordings to {out}" in proc.stdout
    assert f"SHA-256 {release[1]} verified" in proc.stderr
    assert sorted(p.name for p in out.glob("*.wav")) == sorted(RECORDINGS)

    bad = _cli(str(tmp_path / "x"), "--url", f"http://127.0.0.1:{closed_port}/a.tar.gz")
    assert bad.returncode == 1
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: http://127.0.0.1:")
    assert "download it by hand" in lines[0]
    wrong = _cli(str(tmp_path / "y"), "--url", f"{server}/v1.0.9.tar.gz", "--sha256", "1" * 64)
    assert wrong.returncode == 1 and "checksum mismatch" in wrong.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
