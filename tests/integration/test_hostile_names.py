"""File names with odd characters, from a folder and from a zip, through the real CLI and
the Dataset page: every clip kept under an id that round-trips, every refusal one line, and
the upload limits stated where a user uploads."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.apptest import open_page
from tests.clirun import vae
from vae.data import archive
from vae.data.dataset import load_dataset

ODD = [
    "a b.wav", "é 1.wav", 'quote".wav', "comma,semi;.wav", "-dash.wav", "#hash.wav",
    "new\nline.wav", "tab\t.wav", "x" * 200 + ".wav", "emoji🎵.wav", "CON.wav",
    "back\\slash.wav", "%d%s.wav", "$HOME.wav", "' OR 1=1 --.wav",
]  # fmt: skip
BAD = "bad\nname.wav"  # not audio, and a newline in its name


def _tone(freq: float) -> bytes:
    t = np.arange(4000) / 8000
    buf = io.BytesIO()
    sf.write(buf, (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 8000, format="WAV")
    return buf.getvalue()


def _files() -> dict[str, bytes]:
    """label/name -> bytes: every odd name in two label folders, plus one bad file."""
    files = {}
    for label, base in (("zero", 300), ("one", 600)):
        for i, name in enumerate(ODD):
            files[f"{label}/{name}"] = _tone(base + 17 * i)
    files[f"one/{BAD}"] = b"not audio at all"
    return files


@pytest.mark.slow
def test_odd_names_in_a_folder_keep_their_ids_and_the_bad_one_is_one_line(tmp_path: Path) -> None:
    src = tmp_path / "clips"
    for rel, data in _files().items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    proc = vae("preprocess", src, "--out", tmp_path / "data", "--preset", "fsdd")
    assert proc.returncode == 0, proc.stderr
    assert f"kept {2 * len(ODD)} clips, refused 1 files" in proc.stdout

    skipped = [line for line in proc.stderr.splitlines() if line.startswith("skipped")]
    assert skipped == [skipped[0]] and "one/bad\\nname.wav" in skipped[0]
    assert "not readable audio" in skipped[0]

    ds = load_dataset(tmp_path / "data")
    expected = {f"{label}/{Path(name).stem}" for label in ("zero", "one") for name in ODD}
    assert set(ds.ids) == expected  # quotes, commas, newlines survive manifest.csv
    assert np.isfinite(np.asarray(ds.features)).all()
    errors = (tmp_path / "data" / "errors.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(errors)))
    assert rows[1][0] == f"one/{BAD}" and "not readable audio" in rows[1][1]


@pytest.mark.slow
def test_odd_names_in_a_zip_are_sanitised_kept_apart_and_stay_inside(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for rel, data in _files().items():
            zf.writestr(rel, data)
        zf.writestr("zero/a?.wav", _tone(900))  # sanitises to the same name as "a*.wav"
        zf.writestr("zero/a*.wav", _tone(950))
        zf.writestr("../../escape.wav", _tone(1000))
        zf.writestr("/etc/passwd.wav", _tone(1000))
    (tmp_path / "clips.zip").write_bytes(buf.getvalue())
    before = set(tmp_path.parent.iterdir())

    proc = vae("preprocess", tmp_path / "clips.zip", "--out", tmp_path / "data")
    assert proc.returncode == 0, proc.stderr
    assert set(tmp_path.parent.iterdir()) == before  # nothing written beside the test folder
    stderr = proc.stderr.splitlines()
    assert any("../../escape.wav" in line and "leaves the folder" in line for line in stderr)
    assert any("/etc/passwd.wav" in line and "absolute" in line for line in stderr)
    ds = load_dataset(tmp_path / "data")
    assert len(ds) == 2 * len(ODD) + 2  # both a?/a* kept under distinct ids
    assert len(set(ds.ids)) == len(ds)
    assert all("\n" not in i and "\\" not in i for i in ds.ids)


def test_the_upload_form_states_its_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    at = open_page("dataset")
    assert not at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "Up to 200 MB per file" in captions
    assert archive.Limits().describe() in captions
    assert "at most 20,000 entries and 2 GB unpacked per import" in captions
