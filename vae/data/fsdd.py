"""Download the Free Spoken Digit Dataset release and keep its recordings as a folder of clips.

The archive is GitHub's tarball of the tagged release v1.0.9 (3,000 8 kHz WAVs,
``{digit}_{speaker}_{i}.wav``). Its size and SHA-256 are the ones TensorFlow Datasets pins
for ``spoken_digit`` (tensorflow_datasets/audio/spoken_digit/checksums.tsv). The download
streams to a temp file while hashing, is verified, and only ``recordings/*.wav`` are
unpacked (through :mod:`vae.data.archive`, so the folder appears whole or not at all).
URL and checksum can be overridden (arguments, or the env vars below) for a mirror or a test.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vae.data import archive
from vae.progress import Progress
from vae.storage import files as storage

FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/v1.0.9.tar.gz"
FSDD_SHA256 = "8bc44cde129d505cbbb6b365c09f80c663f2aa77578afc634e6141a2f87100c0"
FSDD_BYTES = 11_975_353  # GitHub sends no Content-Length for archives: the bar needs a total
ENV_URL, ENV_SHA256 = "VAE_FSDD_URL", "VAE_FSDD_SHA256"
MAX_BYTES = 512 * archive.MB  # a download past this is not the release
TIMEOUT = 30.0  # seconds without a byte before giving up
HINT = "check the connection, or download it by hand, unpack it and use the folder path"


class DownloadError(ValueError):
    """A download that failed or did not match its checksum; the message names URL and fix."""


@dataclass(frozen=True)
class Download:
    """A finished download: where it is, its SHA-256 and whether that matched a pinned one."""

    path: Path
    sha256: str
    bytes: int
    verified: bool


def resolve(url: str | None = None, sha256: str | None = None) -> tuple[str, str | None]:
    """The URL and expected SHA-256: arguments, else the env vars, else the pinned release.

    A URL other than the release's has no known checksum unless one is given.
    """
    url = url or os.environ.get(ENV_URL) or FSDD_URL
    sha256 = sha256 or os.environ.get(ENV_SHA256) or (FSDD_SHA256 if url == FSDD_URL else None)
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"sha256 {sha256!r} is not 64 hex digits; pass the archive's SHA-256")
    return url, sha256


def download(
    url: str,
    dest: Path,
    sha256: str | None = None,
    progress: Progress | None = None,
    expected_bytes: int = 0,
    timeout: float = TIMEOUT,
) -> Download:
    """Stream ``url`` into ``dest`` (temp file + rename), reporting progress(bytes, total).

    ``total`` is the Content-Length, else ``expected_bytes``, else 0 (unknown).
    Raises:
        DownloadError: unreachable, HTTP error, too big, or SHA-256 not ``sha256``.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = storage.temp_beside(dest, "download")
    digest, done = hashlib.sha256(), 0
    request = urllib.request.Request(url, headers={"User-Agent": "sound-vae-studio"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, tmp.open("xb") as f:
            total = int(response.headers.get("Content-Length") or 0) or expected_bytes
            if progress is not None:
                progress(0, total)
            while chunk := response.read(archive.CHUNK):
                done += len(chunk)
                if done > MAX_BYTES:
                    raise DownloadError(f"{url}: larger than {MAX_BYTES // archive.MB} MB; {HINT}")
                digest.update(chunk)
                f.write(chunk)
                if progress is not None:
                    progress(done, max(total, done))
        actual = digest.hexdigest()
        if sha256 is not None and actual != sha256:
            raise DownloadError(
                f"{url}: checksum mismatch (SHA-256 {actual}, expected {sha256}): the download "
                "is corrupt or the file changed; retry, or pass the new checksum if you trust it"
            )
        os.replace(tmp, dest)
    except urllib.error.HTTPError as err:
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}; {HINT}") from None
    except (TimeoutError, urllib.error.URLError, http.client.HTTPException, ConnectionError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(f"{url}: could not download ({reason}); {HINT}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return Download(dest, actual, done, sha256 is not None)


def recording(path: PurePosixPath) -> PurePosixPath | None:
    """``<top>/recordings/x.wav`` -> ``x.wav``; anything else in the archive is skipped."""
    if path.parent.name == "recordings" and path.suffix.lower() == ".wav":
        return PurePosixPath(path.name)
    return None


def fetch_fsdd(
    out: str | Path,
    url: str | None = None,
    sha256: str | None = None,
    progress: Progress | None = None,
) -> tuple[archive.ImportSummary, Download]:
    """Download the FSDD release (or ``url``), verify it and keep its recordings in ``out``.

    ``out`` becomes a flat folder of ``{digit}_{speaker}_{i}.wav`` (replaced whole if an
    earlier fetch made it). progress(bytes done, bytes total) follows the download.
    Raises:
        DownloadError: see :func:`download`; ValueError: a bad archive or ``out``.
    """
    out = Path(out)
    url, sha256 = resolve(url, sha256)
    tmp = storage.temp_beside(out, "archive")
    try:
        got = download(url, tmp, sha256, progress, FSDD_BYTES if url == FSDD_URL else 0)
        summary = archive.extract_archive(got.path, out, select=recording, name=url)
    finally:
        tmp.unlink(missing_ok=True)
    return summary, got
