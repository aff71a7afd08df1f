"""What one visitor may keep on the server: its own folders under ``data/sources``, within
stated sizes, given back when the session ends.

Each session gets private folders (``upload-<hex>`` for its imports, ``demo-<hex>`` for its
generated demo set, ``vae.storage.data_roots.PRIVATE_PREFIXES``); beside each, a hidden owner mark
``.<name>.owner`` says which server process and session made it (written before the folder,
so a folder without one is a leftover). Streamlit 1.67 has no session-end hook, so a sweeper
thread (started by the Dataset page's first view, with a sweep at once: the start-up sweep;
or by a clip upload or a download offered elsewhere) removes, every ``SWEEP_S`` seconds, the
folders whose owner is gone: a session of this process disconnected for over ``GRACE_S``
(Streamlit keeps a closed tab's session 120 s for a reconnect), or a server process no
longer running. The same sweep drops the uploaded bytes Streamlit still holds for ended
sessions (it removes them only when a session is shut down, never when a disconnected one
expires) and the downloads no session shows any more.

Sizes (environment variables override them, in MB): one import's uploaded files
``IMPORT_MB``, what one session keeps under ``data/sources`` ``SESSION_MB``, and
``data/sources`` as a whole ``SOURCES_MB``.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.uploaded_file_manager import UploadedFile

from vae.storage.data_roots import is_private
from vae.storage.files import atomic_write_text, pid_alive

MB = 2**20
IMPORT_MB, SESSION_MB, SOURCES_MB = 300, 600, 4096
ENV = {"import": "VAE_IMPORT_MB", "session": "VAE_SESSION_MB", "sources": "VAE_SOURCES_MB"}
SWEEP_S = 30.0
GRACE_S = 150.0
TOKEN = "dataset-session-token"  # session_state: the hex this session's folders are named by
ROUND = "dataset-upload-round"  # session_state: how many times the uploader was emptied
UPLOADER = "dataset-upload"  # the uploader's widget key, then "dataset-upload-<round>"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caps:
    """The stated sizes in bytes: per import, per session, for ``data/sources``."""

    import_bytes: int
    session_bytes: int
    sources_bytes: int


def caps() -> Caps:
    """The sizes in force: the defaults, or the environment's (whole MB) where set."""

    def read(kind: str, default: int) -> int:
        text = os.environ.get(ENV[kind], "").strip()
        if not text:
            return default * MB
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not 0 < value < 2**40:
            raise ValueError(f"{ENV[kind]}={text!r}: give a size in MB above 0 (e.g. {default})")
        return int(value * MB)

    return Caps(read("import", IMPORT_MB), read("session", SESSION_MB), read("sources", SOURCES_MB))


def folder_bytes(path: Path) -> int:
    """The bytes of the files under ``path`` (0 when missing); links are not followed."""
    total, folders = 0, [str(path)]
    while folders:
        try:
            with os.scandir(folders.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        except OSError:  # missing, or removed while walked
            continue
    return total


def _mb(n: int) -> str:
    return f"{n / MB:.0f} MB" if n >= MB else f"{n / MB:.2f} MB"


def check_upload_size(sizes: Sequence[int]) -> None:
    """Refuse uploaded files whose total is over ``IMPORT_MB``, in one line."""
    limit, total = caps().import_bytes, sum(sizes)
    if total > limit:
        raise ValueError(
            f"this upload is {_mb(total)}, over the {_mb(limit)} one import may hold "
            f"({ENV['import']}); upload fewer or smaller files"
        )


def check_import(sizes: Sequence[int], sources: Path, target: Path, own: Sequence[Path]) -> int:
    """Refuse an import past a stated size, in one line naming the size and the variable.

    Args:
        sizes: the uploaded files' sizes.
        sources: ``data/sources``.
        target: the session's upload folder, which the import replaces whole.
        own: every folder of this session under ``sources`` (``target`` included).

    Returns:
        The bytes the import may unpack (its archives included) within the session's and
        ``sources``' sizes.
    """
    limit, total = caps(), sum(sizes)
    check_upload_size(sizes)
    kept = sum(folder_bytes(f) for f in own if f != target)
    if kept + total > limit.session_bytes:
        raise ValueError(
            f"this session keeps {_mb(kept)} under {sources} and the upload adds {_mb(total)}, "
            f"over the {_mb(limit.session_bytes)} one session may keep ({ENV['session']}); "
            "upload less"
        )
    used = folder_bytes(sources) - folder_bytes(target)
    check_quota(sources, used + total)
    return min(limit.session_bytes - kept, limit.sources_bytes - used)


def check_quota(sources: Path, needed: int | None = None) -> None:
    """Refuse new files under ``sources`` when they would take it past ``SOURCES_MB``."""
    quota = caps().sources_bytes
    needed = folder_bytes(sources) if needed is None else needed
    if needed > quota:
        raise ValueError(
            f"{sources} would hold {_mb(needed)}, over the {_mb(quota)} allowed for every "
            f"visitor's clips together ({ENV['sources']}); try again later, or ask whoever "
            "runs the app to free space there"
        )


# ------------------------------------------------------------------------- own folders
def _mark(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.owner"


def own_folder(sources: Path, kind: str, key: str) -> Path:
    """This session's ``<kind>-<hex>`` folder under ``sources`` (not made here), its name
    kept under session_state ``key``; its owner mark is written and the sweeper started."""
    token = st.session_state.setdefault(TOKEN, secrets.token_hex(4))
    folder = sources / st.session_state.setdefault(key, f"{kind}-{token}")
    ctx = get_script_run_ctx()
    owner = {"pid": os.getpid(), "session": ctx.session_id if ctx else ""}
    mark = _mark(folder)
    if not mark.is_file() or _owner(mark) != owner:
        sources.mkdir(parents=True, exist_ok=True)
        atomic_write_text(mark, json.dumps(owner))
    start_sweeper(sources)
    return folder


def _owner(mark: Path) -> dict | None:
    try:
        owner = json.loads(mark.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(owner, dict) and isinstance(owner.get("pid"), int)
    return owner if ok else None


def sweep(sources: Path, alive: Callable[[str], bool]) -> list[Path]:
    """Remove the private folders under ``sources`` whose owner is gone, and their marks.

    Args:
        sources: ``data/sources``.
        alive: whether a session of this process still lives, by session id.

    Returns:
        The folders removed.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(sources))
    except OSError:
        return removed
    names = {e.name for e in entries}
    for entry in entries:
        name = entry.name
        mark_of = name[1:-6] if name.startswith(".") and name.endswith(".owner") else None
        if not (is_private(name) or (mark_of and is_private(mark_of))):
            continue
        folder = sources / (mark_of or name)
        if mark_of and mark_of in names:
            continue  # judged with its folder
        owner = _owner(_mark(folder))
        if owner is None:
            gone = True
        elif owner["pid"] != os.getpid():
            gone = not pid_alive(owner["pid"])
        else:
            gone = not alive(str(owner.get("session", "")))
        if gone:
            if folder.is_dir() and not folder.is_symlink():
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
            elif folder.is_symlink():
                folder.unlink(missing_ok=True)
            _mark(folder).unlink(missing_ok=True)
    return removed


class Liveness:
    """Whether a session of this server still lives: connected, or disconnected for under
    ``grace_s`` (a reconnect within Streamlit's 120 s finds its folders)."""

    def __init__(self, grace_s: float = GRACE_S) -> None:
        self.grace_s = grace_s
        self._gone_since: dict[str, float] = {}

    def __call__(self, session_id: str) -> bool:
        if not Runtime.exists():
            return True  # no server (a test run): nothing to judge by
        if Runtime.instance().is_active_session(session_id):
            self._gone_since.pop(session_id, None)
            return True
        since = self._gone_since.setdefault(session_id, time.monotonic())
        return time.monotonic() - since < self.grace_s


def drop_ended_uploads(alive: Callable[[str], bool]) -> None:
    """Give back the uploaded bytes Streamlit still holds for sessions that ended."""
    if not Runtime.exists():
        return
    manager = Runtime.instance().uploaded_file_mgr
    storage = getattr(manager, "file_storage", None)  # MemoryUploadedFileManager's
    if not isinstance(storage, dict):
        return
    for session_id in list(storage):
        if not alive(session_id):
            manager.remove_session_files(session_id)


def drop_served_downloads() -> None:
    """Let Streamlit forget downloads no session shows any more. A download built on click
    (``ui.downloads``) is stored unreferenced and removed only at the second sweep of
    orphans after it, which Streamlit runs when a script run ends: a session that clicks
    and closes would leave the zip in memory until other visitors' runs. Two sweeper rounds
    (``SWEEP_S`` apart) remove it."""
    if Runtime.exists():
        Runtime.instance().media_file_mgr.remove_orphaned_files()


_lock = threading.Lock()
_roots: set[Path] = set()
_thread: list[threading.Thread] = []


def start_sweeper(sources: Path | None = None) -> None:
    """Start the sweeper once per process; sweep ``sources`` now (the start-up sweep) and
    then every ``SWEEP_S`` seconds. Without ``sources`` it only gives back ended sessions'
    uploads (a page whose uploads go nowhere on disk)."""
    root = None if sources is None else Path(sources).resolve()
    with _lock:
        if not _thread:
            _thread.append(threading.Thread(target=_sweep_forever, daemon=True, name="sweeper"))
            _thread[0].start()
        if root is None or root in _roots:
            return
        _roots.add(root)
    sweep(root, Liveness())


def _sweep_forever() -> None:
    alive = Liveness()
    while True:
        time.sleep(SWEEP_S)
        try:
            with _lock:
                roots = sorted(_roots)
            for root in roots:
                sweep(root, alive)
            drop_ended_uploads(alive)
            drop_served_downloads()
        except Exception:  # noqa: BLE001 - a sweep that fails must not end the sweeper
            _log.exception("sweeping the session folders failed")


# ------------------------------------------------------------------------- uploads
def uploader_key() -> str:
    """The uploader's widget key this round: a new key draws an empty uploader."""
    n = st.session_state.get(ROUND, 0)
    return UPLOADER if n == 0 else f"{UPLOADER}-{n}"


def release(uploads: Sequence[UploadedFile]) -> None:
    """Give back the memory of uploaded files once on disk (or refused): Streamlit keeps
    their bytes until the session ends, so drop them from its upload manager and draw a
    new, empty uploader from the next run on."""
    ctx = get_script_run_ctx()
    remove = getattr(ctx.uploaded_file_mgr, "remove_file", None) if ctx else None
    for upload in uploads:
        if remove is not None:
            remove(ctx.session_id, upload.file_id)
    st.session_state[ROUND] = st.session_state.get(ROUND, 0) + 1
