"""The sound pad's exported decoders on disk: one folder per checkpoint content, kept while
a page may load it, within a disk budget, and only for models a browser can carry.

Why content and not path or file time: two sessions on copies of one checkpoint share one
export, a retrained checkpoint (new weights) gets a new one, and nothing hands out a URL
whose folder another key's clean-up removed. Why a use time and not "the newest N": the old
rule deleted exports that sessions were still playing (issue 23, finding 6). Each hand-out
touches its folder (the folder's mtime is its last use, shared by every server process on
this disk); clean-up runs after each new export and removes the least recently used folders
while the total is over :data:`BUDGET_BYTES`, never one used in the last
:data:`IN_USE_SECONDS`. A page whose model file still fails to load (removed by hand, a
truncated file) asks again (:func:`ensure` with ``failed_url``) and gets a fresh export.

Models over :data:`MAX_PARAMETERS` are never exported for the pad: the pages use the
server path, decided from the parameter count of the model already loaded, before any
export is built in the server process (issue 23, findings 2 and 11).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vae.export.exporter import MANIFEST, export_checkpoint
from vae.model.checkpoints import CONFIG_FILE, LATENTS_FILE, WEIGHTS_FILE
from vae.vocoder.network import vocoder_dir

# Every size the Train page offers fits on every preset (the largest, "large" with 2
# residual blocks on the music preset, has 11.8 M): about 85 MB of export on disk, 34 MB
# downloaded (the decoder), a second or so a sound in the browser. The 64 M model of the
# finding: 455 MB of export and 8.4 s a sound.
MAX_PARAMETERS = 12_000_000
BUDGET_BYTES = 400 * 2**20  # all the pad's exports together, those in use excepted
IN_USE_SECONDS = 30 * 60  # an export handed out this recently may still be loaded by a page
CONTENT_FILES = (WEIGHTS_FILE, CONFIG_FILE, LATENTS_FILE)  # what an export is made from

_lock = threading.Lock()  # guards the dicts below and hands out one lock per key
_key_locks: dict[str, threading.Lock] = {}
_entries: dict[str, Exported] = {}  # content key -> what this process handed out
_digests: dict[tuple, str] = {}  # (checkpoint, its files' sizes and times) -> content key


@dataclass(frozen=True)
class Exported:
    """A checkpoint's decoder as the page loads it: URL relative to the component (its
    ``?v=`` changes with each new export of that content, so a page never keeps a failed
    one), the folder, and the export's description (export.json)."""

    model_url: str
    folder: Path
    info: dict[str, Any]


def too_big(n_parameters: int) -> str | None:
    """Why a model of ``n_parameters`` stays on the server path, or None when the pad may
    export it."""
    if n_parameters <= MAX_PARAMETERS:
        return None
    return (
        f"this model has {n_parameters / 1e6:.1f} M parameters, more than the "
        f"{MAX_PARAMETERS / 1e6:.0f} M the in-browser player takes (a large download and "
        "seconds a sound); here the server makes each sound"
    )


def _content_files(checkpoint: Path) -> list[Path]:
    found = [checkpoint / name for name in CONTENT_FILES if (checkpoint / name).is_file()]
    vocoder = vocoder_dir(checkpoint)
    if vocoder.is_dir():
        found += sorted(p for p in vocoder.iterdir() if p.is_file())
    return found


def content_key(checkpoint: str | Path) -> str:
    """A hash of what the export is made from (weights, config, latents, vocoder): equal
    for copies, new for a retrained checkpoint. Files are read again only when their size
    or time changed."""
    checkpoint = Path(checkpoint).resolve()
    files = _content_files(checkpoint)
    stats = [(f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    signature = (str(checkpoint), tuple(zip((f.name for f in files), stats, strict=True)))
    with _lock:
        known = _digests.get(signature)
    if known is not None:
        return known
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.relative_to(checkpoint)}\0{file.stat().st_size}\0".encode())
        with open(file, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                digest.update(block)
    key = digest.hexdigest()[:20]
    with _lock:
        if len(_digests) >= 256:  # a long training makes one version an epoch
            _digests.clear()
        _digests[signature] = key
    return key


def _key_lock(key: str) -> threading.Lock:
    with _lock:
        return _key_locks.setdefault(key, threading.Lock())


def _model_file(info: dict[str, Any]) -> str:
    return info["files"].get("decoder_mix") or info["files"]["decoder"]


def _read(folder: Path) -> Exported | None:
    """The export in ``folder`` if it is whole (manifest and model file), else None; this
    process's copy when the manifest on disk is the one it read (export.json of a mel model
    holds a large pseudo-inverse: not parsed again on every page run)."""
    manifest = folder / MANIFEST
    try:
        stamp = manifest.stat().st_mtime_ns
        with _lock:
            entry = _entries.get(folder.name)
        if (
            entry is None
            or entry.folder != folder
            or entry.model_url.rpartition("?v=")[2] != str(stamp)
        ):
            info = json.loads(manifest.read_text())
            entry = Exported(f"models/{folder.name}/{_model_file(info)}?v={stamp}", folder, info)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return entry if (folder / _model_file(entry.info)).is_file() else None


def ensure(
    checkpoint: str | Path,
    models: Path,
    failed_url: str | None = None,
    building: Callable[[], AbstractContextManager] = nullcontext,
) -> Exported:
    """The checkpoint's export in ``models``, made when missing or incomplete, or when the
    page could not load ``failed_url`` and that is still the URL it would get; its use time
    is touched. Over the budget, unused exports are removed after a new one is made.

    Args:
        building: entered while an export is made (the page's spinner).
    """
    key = content_key(checkpoint)
    folder = models / key
    with _key_lock(key):
        entry = _read(folder)
        made = entry is None or (failed_url is not None and entry.model_url == failed_url)
        if made:
            if folder.is_dir() and not (folder / MANIFEST).is_file():
                # Ours (MODELS holds only the pad's exports) but broken: an export refuses to
                # replace a folder it does not recognise as one.
                shutil.rmtree(folder, ignore_errors=True)
            with building():
                export_checkpoint(checkpoint, folder)
            entry = _read(folder)
            if entry is None:  # export_checkpoint wrote it whole or raised
                raise RuntimeError(f"{folder}: the export left no decoder")
        with _lock:
            _entries[key] = entry
        _touch(folder)
    if made:
        tidy(models)
    return entry


def _touch(folder: Path) -> None:
    try:
        os.utime(folder)
    except OSError:
        pass  # removed meanwhile: the next hand-out makes it again


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _exports(models: Path) -> list[Path]:
    """Export folders only: a hidden folder is an export being built (or its leftover,
    which export_checkpoint itself tidies)."""
    if not models.is_dir():
        return []
    return [p for p in models.iterdir() if p.is_dir() and not p.name.startswith(".")]


def in_use(folder: Path, now: float | None = None, window: float = IN_USE_SECONDS) -> bool:
    """Whether ``folder`` was handed out in the last ``window`` seconds (by any process)."""
    now = time.time() if now is None else now
    try:
        return now - folder.stat().st_mtime < window
    except OSError:
        return False


def tidy(models: Path, budget: int = BUDGET_BYTES, now: float | None = None) -> list[Path]:
    """Remove the least recently used exports while all of them take more than ``budget``
    bytes, never one in use (:func:`in_use`); returns the folders removed. This process's
    record of a removed export goes with it."""
    found = [(p.stat().st_mtime, _size(p), p) for p in _exports(models)]
    total = sum(size for _, size, _ in found)
    removed = []
    for _, size, folder in sorted(found, key=lambda item: item[0]):
        if total <= budget:
            break
        if in_use(folder, now):
            continue
        with _key_lock(folder.name):
            with _lock:
                _entries.pop(folder.name, None)
            shutil.rmtree(folder, ignore_errors=True)
        total -= size
        removed.append(folder)
    return removed


def handed_out() -> dict[str, Exported]:
    """What this process has handed out, by content key (for tests and diagnostics)."""
    with _lock:
        return dict(_entries)
