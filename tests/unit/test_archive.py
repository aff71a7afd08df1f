"""vae.data.archive: uploads and archives land inside their folder, within limits, audio only."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

import pytest
import soundfile as sf

from vae.data import archive
from vae.data.archive import Limits


def _wav(write_tone, tmp_path: Path, name: str = "tone.wav") -> bytes:
    return write_tone(tmp_path / "src" / name).read_bytes()


def _zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../evil.wav", "leaves the folder"),
        ("a/../../evil.wav", "leaves the folder"),
        ("/etc/evil.wav", "absolute"),
        ("C:/evil.wav", "absolute"),
        ("C:evil.wav", "absolute"),
        ("..\\..\\evil.wav", "leaves the folder"),
        ("__MACOSX/._a.wav", "hidden"),
        ("a/.hidden.wav", "hidden"),
        ("a\x00b.wav", "NUL"),
        ("./", "empty"),
    ],
)
def test_entry_path_refuses_escapes(name, reason):
    with pytest.raises(archive.UnsafeEntry, match=reason):
        archive.entry_path(name)


def test_entry_path_sanitises_odd_names():
    assert archive.entry_path("dir\\sub/a b?*.wav") == PurePosixPath("dir/sub/a b_.wav")
    assert archive.entry_path("./x//<y>|.WAV") == PurePosixPath("x/_y_.WAV")
    assert archive.entry_path("voix/été.wav") == PurePosixPath("voix/été.wav")
    long = archive.entry_path("x" * 300 + ".wav")
    assert len(long.name) == archive.MAX_PART and long.suffix == ".wav"


def test_folder_name_accepts_plain_names_only():
    from vae.workspace import folder_name

    assert folder_name(" my-clips_2 ") == "my-clips_2"
    for bad in ["", "../x", "a/b", ".hidden", "x" * 81, "a b"]:
        with pytest.raises(ValueError, match="not a usable folder name"):
            folder_name(bad)


def test_zip_upload_keeps_audio_inside_target_and_lists_the_rest(tmp_path, write_tone):
    wav = _wav(write_tone, tmp_path)
    data = _zip(
        {
            "clips/dog/a.wav": wav,
            "clips/cat/b.wav": wav,
            "../evil.wav": wav,
            "/abs.wav": wav,
            "clips/notes.txt": b"hello",
            "__MACOSX/clips/._a.wav": b"junk",
        }
    )
    target = tmp_path / "work" / "up"
    summary = archive.save_uploads([("set.zip", data), ("loose.wav", wav)], target)
    assert summary.target == target
    assert sorted(summary.kept) == ["clips/cat/b.wav", "clips/dog/a.wav", "loose.wav"]
    reasons = dict(summary.skipped)
    assert "leaves the folder" in reasons["../evil.wav"]
    assert "absolute" in reasons["/abs.wav"]
    assert reasons["clips/notes.txt"] == "not an audio file"
    assert "__MACOSX/clips/._a.wav" in reasons
    assert _files(target) == [archive.MARKER, *sorted(summary.kept)]
    # Nothing escaped: the work folder holds only the target (no evil.wav, no temp folders).
    assert [p.name for p in (tmp_path / "work").iterdir()] == ["up"]
    assert not (tmp_path / "evil.wav").exists() and not Path("/abs.wav").exists()
    wave, sr = sf.read(target / "clips/dog/a.wav")
    assert sr == 8000 and len(wave) == 4000
    assert summary.bytes == 3 * len(wav)


def test_tar_refuses_links_and_devices(tmp_path, write_tone):
    wav = _wav(write_tone, tmp_path)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("set/ok.wav")
        info.size = len(wav)
        tf.addfile(info, io.BytesIO(wav))
        for name, kind in [("set/link.wav", tarfile.SYMTYPE), ("set/hard.wav", tarfile.LNKTYPE)]:
            link = tarfile.TarInfo(name)
            link.type, link.linkname = kind, "/etc/passwd"
            tf.addfile(link)
        dev = tarfile.TarInfo("set/dev.wav")
        dev.type = tarfile.CHRTYPE
        tf.addfile(dev)
    path = tmp_path / "set.tar.gz"
    path.write_bytes(buf.getvalue())
    summary = archive.extract_archive(path, tmp_path / "out")
    assert summary.kept == ("ok.wav",)  # the single wrapper folder "set" is lifted
    reasons = dict(summary.skipped)
    assert reasons == {
        "set/link.wav": "link",
        "set/hard.wav": "link",
        "set/dev.wav": "device or special file",
    }
    assert not any(p.is_symlink() for p in (tmp_path / "out").rglob("*"))


def test_a_single_wrapper_folder_is_lifted_so_labels_come_first(tmp_path, write_tone):
    wav = _wav(write_tone, tmp_path)
    data = _zip({"set/set/a.wav": wav, "set/other/b.wav": wav, "set/c.wav": wav})
    summary = archive.save_uploads([("set.zip", data)], tmp_path / "out")
    assert sorted(summary.kept) == ["c.wav", "other/b.wav", "set/a.wav"]
    assert _files(tmp_path / "out") == [archive.MARKER, "c.wav", "other/b.wav", "set/a.wav"]


def test_zip_symlink_entry_is_refused(tmp_path, write_tone):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ok.wav", _wav(write_tone, tmp_path))
        link = zipfile.ZipInfo("link.wav")
        link.external_attr = (0o120777 << 16) | 0  # S_IFLNK
        zf.writestr(link, "/etc/passwd")
    summary = archive.save_uploads([("a.zip", buf.getvalue())], tmp_path / "out")
    assert summary.kept == ("ok.wav",)
    assert dict(summary.skipped) == {"link.wav": "symbolic link"}


def test_zip_bomb_ratio_and_size_limits_write_nothing(tmp_path, write_tone):
    bomb = _zip({"big.wav": bytes(4 * 1024 * 1024)})  # 4 MiB of zeros deflate ~1000x
    limits = Limits(max_ratio=50, ratio_grace_bytes=1024 * 1024)
    with pytest.raises(ValueError, match=r"bomb.zip: expands more than 50x"):
        archive.save_uploads([("bomb.zip", bomb)], tmp_path / "out", limits)
    small = Limits(max_total_bytes=1024 * 1024)
    with pytest.raises(ValueError, match=r"bomb.zip: unpacks to more than 1 MB, the limit"):
        archive.save_uploads([("bomb.zip", bomb)], tmp_path / "out", small)
    assert list(tmp_path.iterdir()) == []  # no target, no temp folder left behind
    # The same archive passes under the default limits (64 MiB grace).
    assert archive.save_uploads([("bomb.zip", bomb)], tmp_path / "ok").kept == ("big.wav",)


def test_lying_zip_header_is_refused(tmp_path):
    data = bytearray(_zip({"big.wav": bytes(2 * 1024 * 1024)}))
    # Claim 10 bytes in both headers: zipfile reads only that much, and the CRC then fails.
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(sig) + offset
        data[at : at + 4] = (10).to_bytes(4, "little")
    with pytest.raises(ValueError, match=r"lie.zip: not a readable zip or tar archive \(Bad CRC"):
        archive.save_uploads([("lie.zip", bytes(data))], tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_tar_bomb_is_stopped_while_streaming(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name in ("a.wav", "b.wav"):
            info = tarfile.TarInfo(name)
            info.size = 2 * 1024 * 1024
            tf.addfile(info, io.BytesIO(bytes(info.size)))
    path = tmp_path / "bomb.tgz"
    path.write_bytes(buf.getvalue())
    limits = Limits(max_ratio=50, ratio_grace_bytes=3 * 1024 * 1024)
    with pytest.raises(ValueError, match=r"bomb.tgz: expands more than 50x"):
        archive.extract_archive(path, tmp_path / "out", limits=limits)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.tgz"]


def test_entry_count_limit(tmp_path, write_tone):
    wav = _wav(write_tone, tmp_path)
    data = _zip({f"{i}.wav": wav for i in range(5)})
    with pytest.raises(ValueError, match=r"many.zip: 5 entries, over the limit of 4"):
        archive.save_uploads([("many.zip", data)], tmp_path / "out", Limits(max_entries=4))


def test_bad_archive_and_no_audio_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"broken.zip: not a readable zip or tar archive"):
        archive.save_uploads([("broken.zip", b"PK\x03\x04 not really")], tmp_path / "a")
    with pytest.raises(ValueError, match=r"no audio files .*skipped \.\./evil.txt"):
        archive.save_uploads([("x.zip", _zip({"../evil.txt": b"x"}))], tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


def test_reimport_replaces_an_import_but_never_a_foreign_folder(tmp_path, write_tone):
    wav = _wav(write_tone, tmp_path)
    target = tmp_path / "up"
    archive.save_uploads([("a.wav", wav), ("b.wav", wav)], target)
    archive.save_uploads([("c.wav", wav), ("c.wav", wav)], target)
    assert _files(target) == [archive.MARKER, "c.wav", "c_2.wav"]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("precious")
    with pytest.raises(ValueError, match="was not made by an import; choose another folder"):
        archive.save_uploads([("a.wav", wav)], foreign)
    assert _files(foreign) == ["keep.txt"]
