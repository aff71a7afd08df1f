"""Which folders of clips a visitor may read: inside the configured roots, never another
visitor's private folder (an upload or a demo set under ``data/sources``).

The app's "Folder on disk" takes any path a visitor types; on a shared server that would
read every file the server can, and the other sessions' uploads. The roots come from
``VAE_DATA_ROOTS`` (folders separated by ``os.pathsep``); by default the working folder's
``data/`` and the datasets folder beside the project (``../shared/datasets``) when there.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOTS_ENV = "VAE_DATA_ROOTS"
# A session's own folders under data/sources: "upload-<hex>" (its imports), "demo-<hex>"
# (its generated demo set). No other session may read them.
PRIVATE_PREFIXES = ("upload-", "demo-")
DEFAULT_DATASETS = Path("..") / "shared" / "datasets"


def data_roots(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> list[Path]:
    """The folders "Folder on disk" may read under, resolved (symlinks followed).

    Args:
        env: the environment to read ``VAE_DATA_ROOTS`` from (default ``os.environ``).
        cwd: the working folder the defaults and relative roots are taken from.

    Returns:
        ``VAE_DATA_ROOTS``'s folders when set, else ``cwd/data`` and ``cwd/../shared/datasets``
        (the latter only when it exists).
    """
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else Path(cwd)
    given = [part for part in env.get(ROOTS_ENV, "").split(os.pathsep) if part.strip()]
    if given:
        return [(cwd / Path(part.strip()).expanduser()).resolve() for part in given]
    roots = [(cwd / "data").resolve()]
    if (cwd / DEFAULT_DATASETS).is_dir():
        roots.append((cwd / DEFAULT_DATASETS).resolve())
    return roots


def is_private(name: str) -> bool:
    """Whether a folder name under ``data/sources`` is one session's own."""
    return name.startswith(PRIVATE_PREFIXES)


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def check_source_folder(
    path: str | Path,
    roots: Iterable[Path],
    private_root: Path,
    own: Iterable[Path] = (),
) -> Path:
    """``path`` resolved, when a visitor may read clips from it.

    Args:
        path: the folder as typed (``~``, ``..`` and symlinks are resolved first, so none
            of them leads out of the roots).
        roots: the folders reads are allowed under (``data_roots``).
        private_root: the folder holding the sessions' private folders (``data/sources``).
        own: this session's own private folders, which it may read.

    Raises:
        ValueError: one line naming the path and the fix: outside every root, inside
            another session's folder, or a folder that holds the private ones (its listing
            would include them).
    """
    typed = Path(path).expanduser()
    resolved = typed.resolve()
    roots = [Path(r).resolve() for r in roots]
    if not any(_inside(resolved, root) for root in roots):
        where = ", ".join(str(r) for r in roots) or "none"
        raise ValueError(
            f"{typed}: outside the folders the app may read ({where}); choose a folder inside "
            f"one, or set {ROOTS_ENV} (folders separated by {os.pathsep!r}) where the app starts"
        )
    private = Path(private_root).resolve()
    if _inside(private, resolved):
        raise ValueError(
            f"{typed}: holds the sessions' own upload folders ({private_root}); choose a "
            "folder of clips inside it that is not an upload (e.g. fsdd)"
        )
    if resolved.is_relative_to(private):
        first = resolved.relative_to(private).parts[0]
        mine = {Path(p).resolve() for p in own}
        if is_private(first) and (private / first) not in mine:
            raise ValueError(
                f"{typed}: another session's upload folder; upload your own clips on the Upload tab"
            )
    return resolved
