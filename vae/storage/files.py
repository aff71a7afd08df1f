"""Crash-safe on-disk plumbing: folders built aside and renamed into place, streamed ``.npy``,
and a bounded read-ahead over a thread pool.

A folder is built under a hidden sibling ``.NAME.tmp-<pid>-<hex>`` and swapped in by rename,
so a kill leaves the old folder or the new one. Leftovers of dead processes are removed (or,
for a swap cut between its two renames, the old folder is put back) by :func:`tidy_leftovers`.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import platform
import re
import secrets
import shutil
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import numpy as np

from vae import __version__


class NpyAppender:
    """Append rows to a ``.npy`` file whose length is known only at the end.

    Rows are written straight to disk, so memory stays bounded whatever the total; call
    :meth:`close` to write the final shape (N, *row_shape) into the header.
    """

    def __init__(self, path: Path, dtype: Any, row_shape: tuple[int, ...]) -> None:
        self.path, self.dtype, self.row_shape, self.rows = Path(path), np.dtype(dtype), row_shape, 0
        self._file = self.path.open("wb")
        self._file.write(self._header(0))
        self._data_start = self._file.tell()

    def __enter__(self) -> NpyAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _header(self, n: int) -> bytes:
        buf = io.BytesIO()
        descr = np.lib.format.dtype_to_descr(self.dtype)
        header = {"descr": descr, "fortran_order": False, "shape": (n, *self.row_shape)}
        np.lib.format.write_array_header_1_0(buf, header)
        return buf.getvalue()

    def append(self, block: np.ndarray) -> None:
        """Append ``block`` of shape (rows, *row_shape)."""
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path}: rows of shape {block.shape[1:]}, not {self.row_shape}")
        self._file.write(block.tobytes())
        self.rows += len(block)

    def close(self) -> None:
        """Write the final row count into the header (numpy pads headers to allow this)."""
        if self._file.closed:
            return
        header = self._header(self.rows)
        if len(header) == self._data_start:
            self._file.seek(0)
            self._file.write(header)
            self._file.close()
            return
        self._file.close()  # the header outgrew numpy's padding: copy the data behind a new one
        moved = self.path.with_name(self.path.name + ".part")
        with self.path.open("rb") as old, moved.open("wb") as new:
            new.write(header)
            old.seek(self._data_start)
            shutil.copyfileobj(old, new)
        os.replace(moved, self.path)


class NpyRows:
    """A ``.npy`` file of ``n`` rows laid out up front, whose rows any process may fill.

    Rows are written with ``os.pwrite`` at their offsets, not through a memory map, so a
    writer's resident memory does not grow with the file; rows never written read as zeros.
    """

    def __init__(self, path: Path, dtype: Any, row_shape: tuple[int, ...], n: int) -> None:
        self.path, self.dtype, self.row_shape = Path(path), np.dtype(dtype), tuple(row_shape)
        self.row_bytes = self.dtype.itemsize * int(np.prod(row_shape, dtype=np.int64))
        buf = io.BytesIO()
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (n, *self.row_shape),
        }
        np.lib.format.write_array_header_1_0(buf, header)
        self.data_start = len(buf.getvalue())
        with self.path.open("wb") as f:
            f.write(buf.getvalue())
            f.truncate(self.data_start + n * self.row_bytes)  # sparse until written

    def write(self, row: int, block: np.ndarray) -> None:
        """Write ``block`` (k, *row_shape) as rows ``row .. row + k - 1``."""
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path}: rows of shape {block.shape[1:]}, not {self.row_shape}")
        data, offset = memoryview(block.tobytes()), self.data_start + row * self.row_bytes
        fd = os.open(self.path, os.O_WRONLY)
        try:
            while data:  # a short write (the disk filling up) is retried, so it raises ENOSPC
                done = os.pwrite(fd, data, offset)
                data, offset = data[done:], offset + done
        finally:
            os.close(fd)


def keep_npy_rows(path: Path, rows: np.ndarray, block: int = 256) -> None:
    """Rewrite the ``.npy`` file ``path`` with only ``rows`` (sorted indices), in bounded
    memory (used to drop the zero rows of refused files)."""
    path = Path(path)
    source = np.load(path, mmap_mode="r")
    moved = path.with_name(path.name + ".part")
    with NpyAppender(moved, source.dtype, source.shape[1:]) as out:
        for start in range(0, len(rows), block):
            out.append(source[rows[start : start + block]])
    del source
    os.replace(moved, path)


def temp_beside(out: Path, tag: str = "tmp") -> Path:
    """A hidden path beside ``out`` naming this process: ``.NAME.<tag>-<pid>-<hex>``."""
    return out.parent / f".{out.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (so its lock or temp files are not stale)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def tidy_leftovers(out: Path, marker: str) -> None:
    """Clean up after runs that died while building or swapping ``out``.

    A ``.old`` folder holding ``marker`` is renamed back to ``out`` when ``out`` is missing
    (the swap was cut between its two renames); other leftovers of dead processes are
    deleted. Leftovers of live processes (a run in progress) are left alone.
    """
    out = Path(out)
    if not out.parent.is_dir():
        return
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.(tmp|old)-(\d+)-[0-9a-f]+$")
    for leftover in sorted(out.parent.iterdir()):
        match = pattern.match(leftover.name)
        if not match or pid_alive(int(match.group(2))):
            continue
        if match.group(1) == "old" and not out.exists() and (leftover / marker).is_file():
            os.rename(leftover, out)
        else:
            shutil.rmtree(leftover, ignore_errors=True)


def swap_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder ``tmp`` to ``out``; an existing ``out`` is moved aside first
    and deleted once the new one is in place."""
    if not out.exists():
        os.rename(tmp, out)
        return
    old = temp_beside(out, "old")
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Write a UTF-8 CSV with a header row (even when rows is empty), atomically."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def read_ahead(
    pool: Executor,
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    ahead: int,
    size: Callable[[Any], int] | None = None,
    max_bytes: int | None = None,
) -> Iterator[tuple[Any, Any]]:
    """(item, fn(item)) in order, like ``pool.map``, but with at most ``ahead`` items (and,
    given ``size``, at most ``max_bytes`` of them) submitted ahead of the consumer; one item
    always goes, however large.

    ``pool.map`` submits everything at once, so a slow consumer would hold every result.
    """
    waiting: deque = deque()  # (item, future, bytes)
    held = 0
    for item in items:
        n = size(item) if size is not None else 0
        while waiting and (
            len(waiting) >= ahead or (max_bytes is not None and held + n > max_bytes)
        ):
            done, future, done_n = waiting.popleft()
            held -= done_n
            yield done, future.result()
        waiting.append((item, pool.submit(fn, item), n))
        held += n
    while waiting:
        done, future, _ = waiting.popleft()
        yield done, future.result()


# ------------------------------------------------------------------------------ disk full

# A full disk (ENOSPC), a full quota (EDQUOT) or a file over the size limit (EFBIG).
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class DiskFullError(OSError):
    """A write ran out of space; the message names the file and says what was kept.

    An OSError, so every caller that reports OSErrors reports this one as one line.
    """

    def __init__(self, path: str | Path, cause: OSError, kept: str = "") -> None:
        why = os.strerror(cause.errno) if cause.errno else str(cause)
        super().__init__(
            f"no space left writing {path} ({why}){kept}; free some space and try again"
        )
        self.errno, self.filename = cause.errno, str(path)

    def __str__(self) -> str:  # OSError's own would print "[Errno 28] None: 'path'"
        return str(self.args[0])


def disk_full_cause(err: BaseException) -> OSError | None:
    """The out-of-space OSError behind ``err``, if any (torch.save wraps it in a
    RuntimeError; a worker process's error arrives re-raised)."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in FULL_ERRNOS:
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def raise_if_disk_full(err: BaseException, path: str | Path, kept: str = "") -> None:
    """Raise DiskFullError naming ``path`` when ``err`` comes from a full disk."""
    cause = disk_full_cause(err)
    if cause is not None and not isinstance(err, DiskFullError):
        raise DiskFullError(path, cause, kept) from None


# ------------------------------------------------------------------------------ atomic files


def write_atomically(path: str | Path, write: Callable[[io.BufferedWriter], None]) -> Path:
    """Write through ``write(file)`` into a temp file beside ``path``, fsync, rename over it.

    Raises:
        DiskFullError: out of space; ``path`` is untouched and the temp file removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with tmp.open("xb") as f:  # "x": never clobber; the mode honours the umask
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        kept = f"; the previous {path.name} is kept" if path.exists() else ""
        raise_if_disk_full(err, path, kept)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically (temp file in the same folder + os.replace)."""
    return write_atomically(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Replace ``path`` with UTF-8 ``text`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """Replace ``path`` with ``data`` as indented JSON atomically.

    Raises:
        ValueError: ``data`` holds NaN or an infinity, which JSON has no word for (Python
            would write ``NaN``, a file other readers refuse); nothing is written.
    """
    try:
        text = json.dumps(data, indent=2, allow_nan=False)
    except ValueError:
        raise ValueError(
            f"{path}: a value is NaN or infinite, which JSON cannot hold; not written "
            "(check the numbers given)"
        ) from None
    return atomic_write_text(path, text + "\n")


JSON_MAX_BYTES = 4 << 20  # a config, manifest or job file is a few KB; 4 MiB is far past any


def read_json(
    file: Path,
    *,
    max_bytes: int = JSON_MAX_BYTES,
    error: type[Exception] = ValueError,
    what: str = "",
    fix: str = "replace it or remove its folder",
) -> Any:
    """The content of a JSON file we did not necessarily write (a checkpoint or dataset from
    elsewhere): ``error`` naming the file for one too big to be ours (checked before reading),
    nested too deep to parse (a RecursionError otherwise), unreadable or not JSON; its message
    is "<file>: <what> (<why>); <fix>" ("<file>: <why>; <fix>" without ``what``)."""
    try:
        return _load_json(file, max_bytes)
    except _Refused as refused:
        why = f"{what} ({refused})" if what else str(refused)
        raise error(f"{file}: {why}; {fix}") from None


def read_versioned_json(
    file: Path,
    version: int,
    kind: str,
    fix: str,
    error: type[Exception] = ValueError,
    unreadable: str = "",
) -> dict[str, Any]:
    """A JSON file that carries its ``format_version``: its content, or ``error`` naming the
    file, what is wrong with it and ``fix`` (unreadable: "not a <kind>" unless said)."""
    try:
        data = _load_json(file, JSON_MAX_BYTES)
    except _Refused as refused:
        raise error(f"{file}: {unreadable or 'not a ' + kind} ({refused}); {fix}") from None
    found = data.get("format_version") if isinstance(data, dict) else None
    if found != version:
        raise error(
            f"{file}: {kind} format_version {found!r} is not supported (this version reads "
            f"{version}); {fix}"
        )
    return data


class _Refused(Exception):
    """Why a JSON file was not parsed, in words for the reader's own message."""


def _load_json(file: Path, max_bytes: int) -> Any:
    try:
        size = file.stat().st_size
        if size > max_bytes:
            raise _Refused(f"{size:,} bytes, more than the {max_bytes:,} such a file holds")
        return json.loads(file.read_text(encoding="utf-8"))
    except RecursionError:
        raise _Refused("nested too deep to parse") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise _Refused(str(err)) from None


def versions() -> dict[str, str]:
    """Versions of what made a file, recorded in every config.json."""
    # From the installed packages' metadata: importing torch takes 2.5 s, and preprocessing
    # does without it (the local build tag, "+cu128", is not in the metadata).
    from importlib.metadata import version

    return {
        "vae": __version__,
        "torch": version("torch"),
        "torchaudio": version("torchaudio"),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
