"""From a list of audio files to clips, waveforms and features: the reading half of
preprocessing (``vae.data.dataset`` builds and loads the dataset folder around it).

Two ways through the same reader (:mod:`vae.data.reader`): worker processes writing rows in
place (``vae.data.parallel``: one clip per file, from a single-threaded process), or reader
threads feeding batched STFTs appended in file order (any segment mode, and inside the
app's server, which cannot fork).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vae.audio import features
from vae.audio import io as audio
from vae.audio.features import FeatureConfig
from vae.data import parallel
from vae.data.reader import Segments, read_file
from vae.data.waves import to_int16
from vae.progress import Progress
from vae.storage import files as storage

# Budget of one batched STFT, in samples or STFT cells (whichever a clip has more of): the
# temporaries take ~100 bytes each, so 2**20 keeps them near 100 MiB (64 seed or fsdd clips,
# 8 music segments); larger batches were no faster on 2 cores.
BATCH_BUDGET = 2**20
READ_AHEAD = 8  # files read ahead of the writer: bounds memory however many files there are
# ...and at most this much of them on disk, so that long files (chunks mode reads each whole,
# up to audio.MAX_SECONDS) are read one at a time rather than 8 at once; one file always goes.
READ_AHEAD_BYTES = 64 * 2**20
READ_WORKERS = 2  # soundfile and torch release the GIL: reading overlaps the batched STFT


# One row of the dataset manifest per clip: id, source, label, speaker, start sample.
ManifestRows = list[list[Any]]
StageTimes = dict[str, float]  # stage -> seconds, summed over the workers


@dataclass(frozen=True)
class Job:
    """One preprocessing run: the files (with paths relative to ``src`` and clip ids), the
    two arrays to fill, and how to read them."""

    src: Path
    feats_path: Path
    waves_path: Path
    files: list[Path]
    rels: list[str]
    file_ids: list[str]
    cfg: FeatureConfig
    rule: str
    progress: Progress | None


def analyse_in_processes(job: Job) -> tuple[ManifestRows, list[tuple[str, str]], StageTimes]:
    """One clip per file, worker processes writing rows in place (``vae.data.parallel``)."""
    rels, file_ids = job.rels, job.file_ids
    outcomes, times = parallel.analyse_files(
        job.files, job.src, job.cfg, job.rule, job.feats_path, job.waves_path, job.progress
    )
    rows: ManifestRows = []
    refused: list[tuple[str, str]] = []
    for o in outcomes:
        if o.reason is not None:
            refused.append((rels[o.index], o.reason))
        else:
            rows.append([file_ids[o.index], rels[o.index], o.label, o.speaker, o.start])
    if refused and rows:  # drop the zero rows the refused files left
        kept = np.array([o.index for o in outcomes if o.reason is None], dtype=np.int64)
        for path in (job.feats_path, job.waves_path):
            storage.keep_npy_rows(path, kept)
    return rows, refused, times


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # the reader reports it


def read_ahead(
    pool: Executor, fn: Callable[[Path], Any], files: list[Path]
) -> Iterator[tuple[Path, Any]]:
    """(file, fn(file)) in order, with at most READ_AHEAD files and READ_AHEAD_BYTES of them
    (by size on disk) read or being read ahead of the consumer, and always at least one.

    Memory then depends on the longest file, never on how many there are.
    """
    return storage.read_ahead(pool, fn, files, READ_AHEAD, _size, READ_AHEAD_BYTES)


def analyse_in_threads(job: Job) -> tuple[ManifestRows, list[tuple[str, str]], StageTimes]:
    """Any segment mode: reader threads feed batched STFTs appended in file order."""
    src, files, rels, file_ids = job.src, job.files, job.rels, job.file_ids
    cfg, rule, progress = job.cfg, job.rule, job.progress
    rows: ManifestRows = []
    refused: list[tuple[str, str]] = []
    pending: list[np.ndarray] = []
    batch = max(1, BATCH_BUDGET // max(cfg.clip_samples, cfg.n_stft_bins * cfg.n_frames))
    feats_out = storage.NpyAppender(job.feats_path, np.float16, cfg.shape)
    waves_out = storage.NpyAppender(job.waves_path, np.int16, (cfg.clip_samples,))

    def flush() -> None:
        waves = audio.peak_normalise(np.stack(pending))  # (batch, clip_samples)
        feats = features.waveform_to_features(waves, cfg)  # (batch, bins, frames)
        waves_out.append(to_int16(waves))
        feats_out.append(feats.half().numpy())
        pending.clear()

    def read(path: Path) -> tuple[str, str, Segments] | str:
        return read_file(path, src, cfg, rule)

    import torch

    threads = torch.get_num_threads()
    # Parallelism comes from the reader threads. Per-clip resampling is too small for
    # intra-op threads, and on a busy machine their spin-waits cost 10-30x the work itself.
    torch.set_num_threads(1)
    try:
        with feats_out, waves_out, ThreadPoolExecutor(READ_WORKERS) as pool:
            for k, (_, result) in enumerate(read_ahead(pool, read, files)):
                if isinstance(result, str):
                    refused.append((rels[k], result))
                else:
                    label, speaker, clips = result
                    for seg, start, clip in clips:  # start: sample in the file
                        clip_id = file_ids[k] + (f"#{seg}" if seg else "")
                        rows.append([clip_id, rels[k], label, speaker, start])
                        pending.append(clip)
                        if len(pending) >= batch:
                            flush()
                if progress is not None:
                    progress(k + 1, len(files))
            if pending:
                flush()
    finally:
        torch.set_num_threads(threads)
    return rows, refused, {}  # stages overlap in threads: not timed apart


def analyse(job: Job) -> tuple[ManifestRows, list[tuple[str, str]], StageTimes]:
    """Fill ``job``'s two arrays; returns the kept rows, the refused (file, reason) and, from
    worker processes, the seconds each stage took (read, decode, resample, stft, write)."""
    fast = parallel.can_fork(job.cfg, len(job.files))
    return analyse_in_processes(job) if fast else analyse_in_threads(job)
