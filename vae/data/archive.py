"""Bring uploaded files and archives (zip, tar, tar.gz) into a folder of clips, safely.

An archive is untrusted input: no entry may land outside the target folder (``..``,
absolute paths, drive letters, links and devices are refused), entry count, total size and
compression ratio are limited (zip bombs), odd names are sanitised, and only audio files
(``audio.AUDIO_EXTENSIONS``) are kept; everything else is listed as skipped with a reason.
The folder is built in a hidden temp folder beside the target and renamed into place, so
a failure leaves the old folder or the new one, never half of one.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import stat
import tarfile
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from vae.audio import io as audio
from vae.storage import files as storage

MARKER = ".import.json"  # written into every folder made here: it may be replaced later
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
CHUNK = 1 << 16
MAX_PART = 120  # characters of one sanitised path component
MB = 1024 * 1024

# Maps an entry's (sanitised) path to where it goes under the target, or None to skip it.
Select = Callable[[PurePosixPath], PurePosixPath | None]


@dataclass(frozen=True)
class Limits:
    """What one import may unpack; past a limit the whole import stops with a ValueError."""

    max_entries: int = 20_000
    max_total_bytes: int = 2048 * MB
    max_ratio: float = 100.0  # uncompressed / compressed size of an archive
    # Below this many unpacked bytes any ratio is harmless (a silent WAV deflates ~1000x).
    ratio_grace_bytes: int = 64 * MB

    def describe(self) -> str:
        """The limits in a user's words, for the upload form and the CLI help."""
        return (
            f"at most {self.max_entries:,} entries and {self.max_total_bytes / MB / 1024:g} GB "
            f"unpacked per import, and no archive that unpacks to over {self.max_ratio:g}x its "
            f"size (past {self.ratio_grace_bytes // MB} MB)"
        )


@dataclass(frozen=True)
class ImportSummary:
    """What an import did: files kept (paths relative to ``target``) and skipped (name, why)."""

    target: Path
    kept: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    bytes: int


class UnsafeEntry(ValueError):
    """An archive entry or upload name that must not be written; the message says why."""


def is_archive(name: str) -> bool:
    """Whether a file name looks like an archive this module unpacks."""
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def clean_part(part: str) -> str:
    """One path component reduced to letters, digits, ``_ - .`` and spaces, at most MAX_PART."""
    part = unicodedata.normalize("NFC", part)
    part = re.sub(r"[^\w.\- ]+", "_", part).strip(" .")  # \w keeps letters of any script
    if len(part) > MAX_PART:
        stem, dot, suffix = part.rpartition(".")
        part = (stem[: MAX_PART - len(suffix) - 1] + dot + suffix) if dot else part[:MAX_PART]
    return part or "_"


def entry_path(name: str) -> PurePosixPath:
    """The sanitised relative path of an archive entry or uploaded file name.

    Raises:
        UnsafeEntry: absolute paths, drive letters, ``..``, NUL bytes, hidden or macOS
            metadata entries (``.name``, ``__MACOSX``), empty names.
    """
    text = name.replace("\\", "/")
    if "\x00" in text:
        raise UnsafeEntry("NUL byte in the name")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        raise UnsafeEntry("absolute path")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeEntry("path leaves the folder (..)")
    if not parts:
        raise UnsafeEntry("empty name")
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):
        raise UnsafeEntry("hidden or macOS metadata file")
    return PurePosixPath(*(clean_part(p) for p in parts))


@dataclass
class _Sink:
    """Writes entries under ``root`` (the temp folder), counting against the limits."""

    root: Path
    limits: Limits
    kept: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    written: int = 0

    def place(self, name: str, select: Select | None = None) -> Path | None:
        """Where entry ``name`` goes, or None with the reason recorded in ``skipped``."""
        try:
            rel = entry_path(name)
        except UnsafeEntry as err:
            self.skipped.append((name, str(err)))
            return None
        if select is not None:
            chosen = select(rel)
            if chosen is None:
                self.skipped.append((name, "not part of the dataset"))
                return None
            rel = chosen
        if rel.suffix.lower() not in audio.AUDIO_EXTENSIONS:
            self.skipped.append((name, "not an audio file"))
            return None
        dest, n = self.root / rel, 1
        while dest.exists():  # two names that sanitise alike both survive
            n += 1
            dest = self.root / rel.with_name(f"{rel.stem}_{n}{rel.suffix}")
        # Belt and braces: whatever the name, the file must stay inside the root.
        if self.root.resolve() not in dest.resolve().parents:
            raise UnsafeEntry(f"{name}: resolves outside {self.root}")
        return dest

    def write(self, dest: Path, src: BinaryIO, origin: str, budget: int) -> None:
        """Copy ``src`` into ``dest`` while the running total stays within ``budget`` bytes."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        with dest.open("xb") as out:
            while chunk := src.read(CHUNK):
                self.written += len(chunk)
                if self.written > budget:
                    raise ValueError(self._over(origin, budget))
                out.write(chunk)
        self.kept.append(dest.relative_to(self.root).as_posix())

    def _over(self, origin: str, budget: int) -> str:
        if budget >= self.limits.max_total_bytes:
            return (
                f"{origin}: unpacks to more than {self.limits.max_total_bytes // MB} MB, the "
                "limit; unpack it by hand and use the folder path"
            )
        return (
            f"{origin}: expands more than {self.limits.max_ratio:g}x its size (a zip bomb?); "
            "refused, nothing was written"
        )

    def budget(self, compressed: int) -> int:
        """Bytes an archive of ``compressed`` bytes may add, past what is written already."""
        ratio = max(self.limits.max_ratio * compressed, self.limits.ratio_grace_bytes)
        return self.written + int(min(ratio, self.limits.max_total_bytes - self.written))


def _unpack_zip(data: BinaryIO, origin: str, size: int, sink: _Sink, select: Select | None):
    with zipfile.ZipFile(data) as zf:
        infos = zf.infolist()
        if len(infos) > sink.limits.max_entries:
            raise ValueError(
                f"{origin}: {len(infos)} entries, over the limit of {sink.limits.max_entries}; "
                "split the archive or unpack it by hand and use the folder path"
            )
        budget = sink.budget(size)
        declared = sink.written + sum(i.file_size for i in infos)
        if declared > budget:  # the headers already say it is too big: refuse before writing
            raise ValueError(sink._over(origin, budget))
        for info in infos:
            if info.is_dir():
                continue
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                sink.skipped.append((info.filename, "symbolic link"))
            elif stat.S_IFMT(mode) and not stat.S_ISREG(mode):
                sink.skipped.append((info.filename, "not a regular file"))
            elif info.flag_bits & 0x1:
                sink.skipped.append((info.filename, "encrypted"))
            elif dest := sink.place(info.filename, select):
                with zf.open(info) as f:  # streams; the real size counts, not the header's
                    sink.write(dest, f, origin, budget)


def _unpack_tar(data: BinaryIO, origin: str, size: int, sink: _Sink, select: Select | None):
    budget = sink.budget(size)
    with tarfile.open(fileobj=data, mode="r:*") as tf:
        for count, member in enumerate(tf, start=1):
            if count > sink.limits.max_entries:
                raise ValueError(
                    f"{origin}: more than {sink.limits.max_entries} entries, the limit; "
                    "split the archive or unpack it by hand and use the folder path"
                )
            if member.isdir():
                continue
            if member.issym() or member.islnk():
                sink.skipped.append((member.name, "link"))
            elif not member.isfile():
                sink.skipped.append((member.name, "device or special file"))
            elif dest := sink.place(member.name, select):
                f = tf.extractfile(member)
                assert f is not None, "a regular member always has data"
                sink.write(dest, f, origin, budget)


def _unpack(data: BinaryIO, origin: str, size: int, sink: _Sink, select: Select | None) -> None:
    """Unpack one archive (zip or tar of any compression, told apart by content)."""
    try:
        if zipfile.is_zipfile(data):
            data.seek(0)
            _unpack_zip(data, origin, size, sink, select)
            return
        data.seek(0)
        _unpack_tar(data, origin, size, sink, select)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise ValueError(
            f"{origin}: not a readable zip or tar archive ({err}); check the file or unpack "
            "it by hand and use the folder path"
        ) from None


def _hoist_wrapper(root: Path, kept: list[str]) -> list[str]:
    """A zipped folder wraps everything in one top folder: lift its contents to ``root``, so
    the sub-folders under it (the labels) are the first level, as in a folder on disk."""
    tops = list(root.iterdir())
    if len(tops) != 1 or not tops[0].is_dir():
        return kept
    wrapper = tops[0].rename(root / f".wrapper-{tops[0].name}")  # no clash with its children
    for child in wrapper.iterdir():
        child.rename(root / child.name)
    wrapper.rmdir()
    return [PurePosixPath(k).relative_to(tops[0].name).as_posix() for k in kept]


def _build(target: Path, origin: str, fill: Callable[[_Sink], None], limits: Limits):
    """Fill a temp folder beside ``target`` through ``fill`` and swap it into place."""
    target = Path(target)
    if target.exists() and not (target / MARKER).is_file():
        if not target.is_dir() or any(target.iterdir()):
            raise ValueError(
                f"{target}: exists and was not made by an import; choose another folder"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    storage.tidy_leftovers(target, MARKER)
    tmp = storage.temp_beside(target, "tmp")
    tmp.mkdir()
    try:
        sink = _Sink(tmp, limits)
        try:
            fill(sink)
        except OSError as err:  # a full disk: name the folder, say the old one is kept
            kept = f"; the previous {target.name} is kept" if target.is_dir() else ""
            storage.raise_if_disk_full(err, target, kept)
            raise
        if not sink.kept:
            why = "; ".join(f"{n}: {r}" for n, r in sink.skipped[:3])
            raise ValueError(
                f"{origin}: no audio files ({', '.join(audio.AUDIO_EXTENSIONS)}) to keep"
                + (f"; skipped {why}" if why else "")
                + "; choose files or an archive of clips"
            )
        kept = _hoist_wrapper(tmp, sink.kept)
        record = {"format_version": 1, "origin": origin, "kept": len(sink.kept),
                  "skipped": sink.skipped}  # fmt: skip
        (tmp / MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        storage.swap_into_place(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ImportSummary(target, tuple(kept), tuple(sink.skipped), sink.written)


def extract_archive(
    archive: str | Path,
    target: str | Path,
    select: Select | None = None,
    limits: Limits = Limits(),
    name: str | None = None,
) -> ImportSummary:
    """Unpack the audio files of a zip or tar(.gz) on disk into ``target`` (replaced whole).

    Args:
        select: maps each entry's sanitised path to its place under ``target``, or None to
            skip it (e.g. keep only ``*/recordings/*.wav``, flattened).
        name: what messages call the archive (default: its file name).
    Raises:
        ValueError: unreadable archive, a limit passed, no audio, or ``target`` holds
            something other than an earlier import.
    """
    archive = Path(archive)
    size, origin = archive.stat().st_size, name or archive.name

    def fill(sink: _Sink) -> None:
        with archive.open("rb") as f:
            _unpack(f, origin, size, sink, select)

    return _build(Path(target), origin, fill, limits)


def save_uploads(
    files: Sequence[tuple[str, bytes]], target: str | Path, limits: Limits = Limits()
) -> ImportSummary:
    """Save uploaded ``(name, bytes)`` into ``target`` (replaced whole): audio files as they
    are under sanitised names, archives unpacked beside them, anything else skipped."""
    names = ", ".join(name for name, _ in files[:3]) + (", ..." if len(files) > 3 else "")

    def fill(sink: _Sink) -> None:
        for name, data in files:
            if is_archive(name):
                _unpack(io.BytesIO(data), Path(name).name, len(data), sink, None)
            elif dest := sink.place(name):
                sink.write(dest, io.BytesIO(data), name, limits.max_total_bytes)

    return _build(Path(target), names or "upload", fill, limits)
