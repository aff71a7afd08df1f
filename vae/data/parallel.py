"""Preprocess one-clip-per-file sources in worker processes, each writing its rows in place.

Profiling the threaded reader showed the GIL, not the work, setting the pace: two reader
threads read FSDD 2.3x slower than one. Here each worker process takes a shard of files,
reads, resamples, trims and analyses it as one batch, and writes its waveforms and features
straight into the output ``.npy`` files at the shard's rows (``storage.NpyRows``); only
labels and reasons travel back. The caller drops the rows of refused files at the end.

Workers are forked, which is only safe from a single-threaded process (the CLI, scripts);
:func:`can_fork` says when, and callers fall back to the threaded path otherwise.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vae.audio import features
from vae.audio import io as audio
from vae.audio.features import FeatureConfig
from vae.data.reader import clips_of, read_source
from vae.progress import Progress
from vae.storage.files import NpyRows

SHARD = 32  # files analysed as one batch: small enough for the STFT to stay in cache
MIN_FILES = 4 * SHARD  # below this, starting processes costs more than it saves


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


def _analyse(shard: Shard) -> list[FileRow]:
    """Runs in a worker: read, clip and analyse a shard, write its rows, return outcomes."""
    cfg = shard.cfg
    rows: list[FileRow | None] = [None] * len(shard.paths)
    sources: dict[int, list[tuple[int, str, str, np.ndarray]]] = {}  # rate -> files
    for k, path in enumerate(shard.paths):
        result = read_source(path, shard.src, cfg, shard.rule, native=True)
        if isinstance(result, str):
            rows[k] = FileRow(shard.first + k, reason=result)
        else:
            label, speaker, wave, sr = result
            sources.setdefault(sr, []).append((k, label, speaker, wave))
    waves = np.zeros((len(shard.paths), cfg.clip_samples), np.float32)  # refused rows stay 0
    for sr, group in sources.items():
        resampled = audio.resample_many([g[3] for g in group], sr, cfg.sample_rate)
        for (k, label, speaker, _), wave in zip(group, resampled, strict=True):
            clips = clips_of(shard.paths[k], wave, cfg)
            if isinstance(clips, str):
                rows[k] = FileRow(shard.first + k, reason=clips)
                continue
            _, start, clip = clips[0]  # "single": one clip per file
            waves[k] = clip
            rows[k] = FileRow(shard.first + k, label, speaker, start)
    waves = audio.peak_normalise(waves)  # (shard, clip_samples)
    feats = features.waveform_to_features(waves, cfg)  # (shard, bins, frames)
    shard.waves.write(shard.first, waves)
    shard.feats.write(shard.first, feats.half().numpy())
    return [row for row in rows if row is not None]


def _start_worker() -> None:
    # One thread per worker: the workers are the parallelism, and a forked OpenMP pool
    # must not be entered.
    torch.set_num_threads(1)


def analyse_files(
    files: Sequence[Path],
    src: Path,
    cfg: FeatureConfig,
    rule: str,
    feats_path: Path,
    waves_path: Path,
    progress: Progress | None = None,
) -> list[FileRow]:
    """Fill ``feats_path`` (N, bins, frames) float16 and ``waves_path`` (N, clip_samples)
    float32 with one row per file, in file order, using worker processes.

    Refused files keep zero rows; the caller drops them (``storage.keep_npy_rows``).
    Returns:
        one FileRow per file, in file order.
    """
    n = len(files)
    feats = NpyRows(feats_path, np.float16, cfg.shape, n)
    waves = NpyRows(waves_path, np.float32, (cfg.clip_samples,), n)
    shards = [
        Shard(i, tuple(files[i : i + SHARD]), src, cfg, rule, feats, waves)
        for i in range(0, n, SHARD)
    ]
    rows: list[FileRow] = []
    context = multiprocessing.get_context("fork")
    with context.Pool(workers(), initializer=_start_worker) as pool:
        for done in pool.imap(_analyse, shards):
            rows.extend(done)
            if progress is not None:
                progress(len(rows), n)
    return rows
