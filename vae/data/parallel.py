"""Preprocess one-clip-per-file sources in worker processes, each writing its rows in place.

Profiling the threaded reader showed the GIL, not the work, setting the pace: two reader
threads read FSDD 2.3x slower than one. Here each worker process takes a shard of files,
reads, resamples, trims and analyses it as one batch, and writes its waveforms and features
straight into the output ``.npy`` files at the shard's rows (``storage.NpyRows``); only
labels, reasons and stage times travel back. The caller drops the rows of refused files at
the end.

The workers resample and analyse in numpy (``vae.audio.analysis``: the same numbers as
torchaudio and ``features.waveform_to_features``), so a preprocessing process that has not
imported torch never does: importing it took 2.5 s and 600 MB of every process, a third of
a 30,000-clip run. Mel features still go through torch, loaded by the worker that needs it.

Workers are forked, which is only safe from a single-threaded process (the CLI, scripts);
:func:`can_fork` says when, and callers fall back to the threaded path otherwise.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vae.audio import analysis, features
from vae.audio import io as audio
from vae.audio.features import FeatureConfig
from vae.data.reader import clips_of, read_source
from vae.data.waves import to_int16
from vae.progress import Progress
from vae.storage.files import NpyRows

SHARD = 32  # files analysed as one batch: small enough for the STFT to stay in cache
MIN_FILES = 4 * SHARD  # below this, starting processes costs more than it saves
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
RESAMPLE_BUDGET = 2**21  # source samples resampled in one batch (8 MiB, plus its output)


@dataclass(frozen=True)
class FileRow:
    """One file's outcome: its row (= its index in the file list), and either its label,
    speaker and start sample, or why it was refused."""

    index: int
    label: str = ""
    speaker: str = ""
    start: int = 0
    reason: str | None = None


@dataclass(frozen=True)
class Shard:
    """A worker's task: files ``first .. first + len(paths) - 1`` and where rows go."""

    first: int
    paths: tuple[Path, ...]
    src: Path
    cfg: FeatureConfig
    rule: str
    feats: NpyRows
    waves: NpyRows


def workers() -> int:
    """Worker processes to use: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def can_fork(cfg: FeatureConfig, n_files: int) -> bool:
    """True when the process path applies: one clip per file, enough files, more than one
    core, and no other thread alive (a fork copies locks other threads may hold)."""
    return (
        cfg.segment == "single"
        and n_files >= MIN_FILES
        and workers() > 1
        and "fork" in multiprocessing.get_all_start_methods()
        and threading.active_count() == 1
    )


def _features(waves: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """(shard, bins, frames) float16 features of clips (shard, samples), in numpy where the
    rows are STFT bins (no torch in the process), else through torch on one thread."""
    if cfg.feature_type.selects_bins:
        return analysis.linear_features(waves, cfg)
    import torch  # mel bands: loaded the first time a worker needs it

    torch.set_num_threads(1)  # the workers are the parallelism
    return features.waveform_to_features(waves, cfg).half().numpy()


def _resampled(
    groups: dict[int, list[tuple[int, str, str, np.ndarray]]], cfg: FeatureConfig
) -> list[tuple[int, str, str, np.ndarray]]:
    """Each file's wave at ``cfg.sample_rate``, resampled a batch per source rate (a clip
    with no trimming needs only its start), in groups of at most RESAMPLE_BUDGET samples."""
    keep = cfg.clip_samples if cfg.trim_db is None else None
    done = []
    for sr, group in groups.items():
        start = 0
        while start < len(group):
            stop, held = start, 0
            while stop < len(group) and (stop == start or held <= RESAMPLE_BUDGET):
                held += len(group[stop][3])
                stop += 1
            part = group[start:stop]
            waves = analysis.resample_each([g[3] for g in part], sr, cfg.sample_rate, keep)
            done += [
                (k, label, speaker, w)
                for (k, label, speaker, _), w in zip(part, waves, strict=True)
            ]
            start = stop
    return done


def _analyse(shard: Shard) -> tuple[list[FileRow], dict[str, float]]:
    """Runs in a worker: read, clip and analyse a shard, write its rows; returns outcomes
    and the seconds each stage took (read, decode, resample, stft, write)."""
    cfg = shard.cfg
    times: dict[str, float] = {}
    rows: list[FileRow | None] = [None] * len(shard.paths)
    groups: dict[int, list[tuple[int, str, str, np.ndarray]]] = {}  # rate -> files
    for k, path in enumerate(shard.paths):
        result = read_source(path, shard.src, cfg, shard.rule, native=True, times=times)
        if isinstance(result, str):
            rows[k] = FileRow(shard.first + k, reason=result)
        else:
            label, speaker, wave, sr = result
            groups.setdefault(sr, []).append((k, label, speaker, wave))
    started = time.perf_counter()
    waves = np.zeros((len(shard.paths), cfg.clip_samples), np.float32)  # refused rows stay 0
    for k, label, speaker, wave in _resampled(groups, cfg):
        clips = clips_of(shard.paths[k], wave, cfg)
        if isinstance(clips, str):
            rows[k] = FileRow(shard.first + k, reason=clips)
            continue
        _, start, clip = clips[0]  # "single": one clip per file
        waves[k] = clip
        rows[k] = FileRow(shard.first + k, label, speaker, start)
    resampled = time.perf_counter()
    feats = _features(waves, cfg)  # (shard, bins, frames); peak-normalised inside
    stored = to_int16(waves, peak=audio.PEAK)  # (shard, clip_samples), peak-normalised
    analysed = time.perf_counter()
    shard.waves.write(shard.first, stored)
    shard.feats.write(shard.first, feats)
    times["resample"] = times.get("resample", 0.0) + resampled - started
    times["stft"] = analysed - resampled
    times["write"] = time.perf_counter() - analysed
    return [row for row in rows if row is not None], times


def _keep_freed_memory() -> None:
    """Have glibc keep freed blocks for reuse. By default it unmaps large ones and trims its
    heap, and each shard's temporaries (~8 MB) came back as fresh pages: 59 page faults a
    clip, a quarter of a worker's time (2 a clip after this)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: its own allocator
        return
    libc.mallopt(M_MMAP_THRESHOLD, 64 * 2**20)
    libc.mallopt(M_TRIM_THRESHOLD, 256 * 2**20)


def _start_worker() -> None:
    # One thread per worker: the workers are the parallelism. numpy's BLAS (the resampling
    # matmuls) would otherwise start a thread per core in each worker.
    if "torch" in sys.modules:  # a forked OpenMP pool must not be entered
        sys.modules["torch"].set_num_threads(1)
    _keep_freed_memory()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1)


def analyse_files(
    files: Sequence[Path],
    src: Path,
    cfg: FeatureConfig,
    rule: str,
    feats_path: Path,
    waves_path: Path,
    progress: Progress | None = None,
) -> tuple[list[FileRow], dict[str, float]]:
    """Fill ``feats_path`` (N, bins, frames) float16 and ``waves_path`` (N, clip_samples)
    int16 (``vae.data.waves``) with one row per file, in file order, using worker processes.

    Refused files keep zero rows; the caller drops them (``storage.keep_npy_rows``).
    Returns:
        one FileRow per file, in file order, and the seconds each stage took, summed over
        the workers: read, decode, resample, stft, write.
    """
    n = len(files)
    feats = NpyRows(feats_path, np.float16, cfg.shape, n)
    waves = NpyRows(waves_path, np.int16, (cfg.clip_samples,), n)
    shards = [
        Shard(i, tuple(files[i : i + SHARD]), src, cfg, rule, feats, waves)
        for i in range(0, n, SHARD)
    ]
    rows: list[FileRow] = []
    times: dict[str, float] = {}
    context = multiprocessing.get_context("fork")
    # The objects made so far (file lists, modules) are frozen out of the collector's sight:
    # the workers' collections no longer walk them, nor write to their pages (copy-on-write).
    gc.freeze()
    try:
        with context.Pool(workers(), initializer=_start_worker) as pool:
            for done, spent in pool.imap(_analyse, shards):
                rows.extend(done)
                for stage, seconds in spent.items():
                    times[stage] = times.get(stage, 0.0) + seconds
                if progress is not None:
                    progress(len(rows), n)
    finally:
        gc.unfreeze()
    return rows, times
