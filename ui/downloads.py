"""Downloads built when clicked, never when a page is viewed (issue 23, finding 2).

``st.download_button`` with bytes keeps them in the server's memory for as long as the
button is on the page, once per session (and ``st.cache_data`` hands out one more copy per
hit): a 770 MB model took the server past 3 GiB on one view. Given a callable, Streamlit
runs it only when the button is clicked and serves its bytes once; so each download here is
a callable, and what it reads is on disk: the checkpoint folder itself, or an export written
to a temporary file when the user asked for it.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ui import session_files
from vae.model.checkpoints import write_checkpoint_zip
from vae.storage.files import atomic_write_bytes

# Exports written for a download: one file per checkpoint version, kept this long after
# it was made (a page offering it longer asks for the export again).
EXPORT_DIR = Path(tempfile.gettempdir()) / "vae-studio-downloads"
KEEP_S = 6 * 3600


def checkpoint_zip(folder: str | Path) -> Callable[[], bytes]:
    """A download's callable: the checkpoint folder zipped through a temporary file at the
    moment of the click (one copy in memory, given to Streamlit to serve)."""
    session_files.start_sweeper()  # which lets Streamlit forget it once served

    def build() -> bytes:
        with tempfile.TemporaryFile(prefix="vae-checkpoint-") as tmp:
            write_checkpoint_zip(folder, tmp)
            tmp.seek(0)
            return tmp.read()

    return build


def file_bytes(path: str | Path) -> Callable[[], bytes]:
    """A download's callable: the file at ``path``, read at the moment of the click."""
    session_files.start_sweeper()
    return lambda: Path(path).read_bytes()


def keep_export(folder: str | Path, stamp: float, data: bytes) -> Path:
    """Write an export's zip for a later download and forget the bytes; older ones go.

    Returns:
        The zip's path, named by the checkpoint and its version (``stamp``).
    """
    EXPORT_DIR.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in EXPORT_DIR.glob("*.zip"):
        try:
            if now - old.stat().st_mtime > KEEP_S:
                old.unlink()
        except OSError:  # another process removed it first
            continue
    digest = hashlib.sha256(f"{Path(folder).resolve()}\0{stamp!r}".encode()).hexdigest()[:24]
    return atomic_write_bytes(EXPORT_DIR / f"{digest}.zip", data)
