"""Preprocess a folder of audio into a SpectrogramSet on disk, and load it back memory-mapped.

A dataset is a folder: ``features.npy`` (N, bins, frames) float16, ``waveforms.npy``
(N, clip_samples) int16 peak-normalised clips (``vae.data.waves``; float32 in datasets made
before, still read; both come back as float32 in [-1, 1]), ``manifest.csv`` (id, source, label,
speaker, start, split), ``config.json`` (format version, FeatureConfig, counts, versions,
fingerprint) and ``errors.csv`` (file, reason). It is built in a hidden temp folder beside
its destination and renamed into place, so a kill leaves the old dataset or the new one.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import functools
import hashlib
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vae.audio import io as audio
from vae.audio.features import FeatureConfig
from vae.data import ingest, sources
from vae.data.waves import DTYPES, Waveforms
from vae.progress import Progress
from vae.storage import files as storage
from vae.storage import limits

if TYPE_CHECKING:  # imported where used: preprocessing does without torch
    import torch

from vae.storage.output_folder import (
    CHECKPOINT,
    DATASET,
    check_output_folder,
    install,
    refuse_replacing_dataset,
)

FORMAT_VERSION = 1
FEATURES_FILE, WAVEFORMS_FILE = "features.npy", "waveforms.npy"
MAX_MANIFEST_BYTES = 4096 * limits.MAX_CLIPS  # a manifest line is far under 4 KB
MANIFEST_FILE, CONFIG_FILE, ERRORS_FILE = "manifest.csv", "config.json", "errors.csv"
MANIFEST_COLUMNS = ("id", "source", "label", "speaker", "start", "split")
SPLITS = ("train", "val")


class NoUsableAudio(ValueError):
    """No file under the source gave a single clip; nothing was written."""


@dataclass(frozen=True)
class PreprocessSummary:
    """What :func:`preprocess` did; ``refused`` holds (file relative to src, reason)."""

    out: Path
    kept: int
    refused: list[tuple[str, str]]
    per_label: dict[str, int]
    seconds: float
    files: int
    stages: dict[str, float] = dataclasses.field(default_factory=dict)
    """Seconds per stage summed over the worker processes (read, decode, resample, stft,
    write): what bounds the run. Empty when reader threads did the work."""


# ------------------------------------------------------------------------------ preprocess


def natural_key(text: str) -> tuple:
    """Sort key that orders digit runs by value: "2" < "9" < "10" < "a"."""
    parts = re.split(r"(\d+)", text)  # alternates text and digit runs, text first
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts)), text


def dataset_fingerprint(cfg: FeatureConfig, ids: Sequence[str]) -> str:
    """Identifies a dataset's content: feature config, clip count and clip ids."""
    text = f"{cfg.fingerprint()}\n{len(ids)}\n" + "\n".join(ids)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _relative(files: Sequence[Path], root: Path) -> list[str]:
    """POSIX paths of ``files`` relative to ``root`` (string work: pathlib's relative_to
    cost a tenth of preprocessing FSDD)."""
    prefix = len(str(root).rstrip(os.sep)) + 1
    return [str(f)[prefix:].replace(os.sep, "/") for f in files]


def _file_ids(rels: Sequence[str]) -> list[str]:
    """Relative path without suffix; files that would share one keep their suffix."""
    stems = [r.rsplit(".", 1)[0] if "." in r.rsplit("/", 1)[-1] else r for r in rels]
    shared = {s for s, n in Counter(stems).items() if n > 1}
    return [r if s in shared else s for r, s in zip(rels, stems, strict=True)]


def assign_splits(
    groups: Sequence[str], labels: Sequence[str], val_fraction: float, seed: int
) -> list[str]:
    """Seeded split stratified by label; all clips of one group (source file) share a split.

    Each label puts round(val_fraction * files) of its files in "val", at least one when it
    has two or more files and never all of them; the rest are "train".
    """
    files_of: dict[str, dict[str, None]] = {}
    for group, label in zip(groups, labels, strict=True):
        files_of.setdefault(label, {})[group] = None  # ordered set
    rng = np.random.default_rng(seed)
    val: set[str] = set()
    for label in sorted(files_of, key=natural_key):
        group_list = list(files_of[label])
        n = len(group_list)
        k = int(np.floor(val_fraction * n + 0.5))
        k = min(max(k, 1), n - 1) if val_fraction > 0 and n >= 2 else 0
        val.update(group_list[i] for i in rng.permutation(n)[:k])
    return ["val" if g in val else "train" for g in groups]


def preprocess(
    src: Path,
    out: Path,
    cfg: FeatureConfig,
    labels: str = "auto",
    val_fraction: float = 0.1,
    seed: int = 0,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> PreprocessSummary:
    """Turn every audio file under ``src`` into clips and features in the dataset ``out``.

    Bad files are listed in errors.csv and skipped. The folder is built beside ``out`` and
    put in place when complete (:func:`vae.storage.output_folder.install`): with ``overwrite``, an
    earlier dataset's files there are replaced, any other file kept; without it a dataset
    there is refused, and so is any folder that is not a dataset.
    Raises:
        DatasetExists: ``out`` holds a dataset and ``overwrite`` is False (nothing touched).
        NoUsableAudio: no file gave a clip (nothing is written).
        storage.DiskFullError: out of space; the previous dataset and no temp folder remain.
        ValueError: bad source, destination, label rule or val_fraction.
    """
    started = time.perf_counter()
    src, out = Path(src).absolute(), Path(out).absolute()
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction} must be in [0, 1)")
    if out.resolve() == src.resolve() or out.resolve() in src.resolve().parents:
        raise ValueError(f"{out}: output would replace the source {src}; choose another --out")
    check_output_folder(out, DATASET)  # a checkpoint, user files...: refused, untouched
    storage.tidy_leftovers(out, CONFIG_FILE)  # a swap cut short: the old dataset is back
    if not overwrite:
        refuse_replacing_dataset(out, src)
    files = sources.find_audio_files(src)
    rule = sources.resolve_label_rule(files, src, labels)
    if progress is not None:
        progress(0, len(files))
    tmp = storage.temp_beside(out, "tmp")
    tmp.mkdir(parents=True)
    kept = "; the previous dataset is kept" if (out / CONFIG_FILE).is_file() else ""
    try:
        summary = _build(src, tmp, files, cfg, rule, val_fraction, seed, progress)
        install(tmp, out, DATASET)  # an older dataset's files replaced, any other file kept
    except Exception as err:
        storage.raise_if_disk_full(err, out, kept)  # one line naming the dataset, not a pwrite
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    kept, refused, per_label, stages = summary
    return PreprocessSummary(
        out, kept, refused, per_label, time.perf_counter() - started, len(files), stages
    )


def _build(
    src: Path,
    tmp: Path,
    files: list[Path],
    cfg: FeatureConfig,
    rule: str,
    val_fraction: float,
    seed: int,
    progress: Progress | None,
) -> tuple[int, list[tuple[str, str]], dict[str, int], dict[str, float]]:
    """Fill ``tmp`` with a complete dataset; returns (kept, refused, per_label, stages)."""
    rels = _relative(files, src)
    file_ids = _file_ids(rels)
    job = ingest.Job(
        src, tmp / FEATURES_FILE, tmp / WAVEFORMS_FILE, files, rels, file_ids, cfg, rule, progress
    )
    rows, refused, stages = ingest.analyse(job)
    if not rows:
        first = f"; first: {refused[0][0]}: {refused[0][1]}" if refused else ""
        raise NoUsableAudio(
            f"{src}: no usable audio in {len(files)} files tried{first}"
            if files
            else f"{src}: no audio files found ({', '.join(audio.AUDIO_EXTENSIONS)}); "
            "point the source at a folder of clips"
        )

    ids = [r[0] for r in rows]
    assert len(set(ids)) == len(ids), "clip ids must be unique"
    splits = assign_splits([r[1] for r in rows], [r[2] for r in rows], val_fraction, seed)
    label_names = sorted({r[2] for r in rows} - {""}, key=natural_key)
    per_label = {name: 0 for name in label_names}
    for r in rows:
        if r[2]:
            per_label[r[2]] += 1
    storage.write_csv(
        tmp / MANIFEST_FILE, MANIFEST_COLUMNS, [r + [s] for r, s in zip(rows, splits, strict=True)]
    )
    storage.write_csv(tmp / ERRORS_FILE, ("file", "reason"), refused)
    info = {
        "format_version": FORMAT_VERSION,
        "feature_config": cfg.to_dict(),
        "source": str(src),
        "label_rule": rule,
        "label_names": label_names,
        "counts": {
            "kept": len(rows),
            "refused": len(refused),
            "files": len(files),
            "per_label": per_label,
            "per_split": {name: splits.count(name) for name in SPLITS},
        },
        "versions": storage.versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "fingerprint": dataset_fingerprint(cfg, ids),
    }
    # config.json is written last: a temp folder holding it is complete.
    storage.atomic_write_json(tmp / CONFIG_FILE, info)  # refuses NaN: config.json stays JSON
    return len(rows), refused, per_label, stages


# ------------------------------------------------------------------------------ loading


@dataclass(eq=False)
class SpectrogramSet:
    """A preprocessed dataset, its arrays memory-mapped read-only.

    features: (N, bins, frames) float16 in [0, 1]; waveforms: (N, clip_samples) clips read
    as float32 in [-1, 1] (stored int16, or float32 in older datasets; :class:`Waveforms`).
    Per-clip lists (ids, sources, labels, speakers, splits) and ``starts`` have length N.
    """

    root: Path
    config: FeatureConfig
    info: dict[str, Any]
    features: np.ndarray
    waveforms: Waveforms
    ids: list[str]
    sources: list[str]
    labels: list[str]
    speakers: list[str]
    starts: np.ndarray
    splits: list[str]
    label_names: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    @functools.cached_property
    def label_indices(self) -> np.ndarray:
        """(N,) int64 index into ``label_names``; -1 for an unlabelled clip."""
        index = {name: i for i, name in enumerate(self.label_names)}
        return np.array([index.get(label, -1) for label in self.labels], dtype=np.int64)

    def split_indices(self, name: str) -> np.ndarray:
        """Sorted clip indices of split "train", "val" or "all"."""
        if name == "all":
            return np.arange(len(self), dtype=np.int64)
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; choose one of {SPLITS + ('all',)}")
        return np.array([i for i, s in enumerate(self.splits) if s == name], dtype=np.int64)

    def showcase(self, n: int, split: str = "val") -> np.ndarray:
        """Up to ``n`` clip indices of ``split`` (all clips when it is empty) with as many
        labels as possible: the first clip of each label in turn, then the next ones."""
        rows = self.split_indices(split)
        rows = rows if len(rows) else self.split_indices("all")
        labels = self.label_indices[rows]
        rank = np.zeros(len(rows), dtype=np.int64)  # how many earlier clips share the label
        for label in np.unique(labels):
            mine = labels == label
            rank[mine] = np.arange(mine.sum())
        order = np.lexsort((labels, rank))  # first of every label, then second of every...
        return rows[order[:n]]

    @functools.cached_property
    def _position(self) -> dict[str, int]:
        return {clip_id: i for i, clip_id in enumerate(self.ids)}

    def index_of(self, clip_id: str) -> int:
        """Position of ``clip_id``; ValueError naming close ids when absent."""
        try:
            return self._position[clip_id]
        except KeyError:
            close = difflib.get_close_matches(clip_id, self.ids, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"{self.root}: no clip with id {clip_id!r}{hint}") from None

    @property
    def fingerprint(self) -> str:
        """Stored fingerprint (feature config + N + ids); checkpoints compare against it."""
        return self.info["fingerprint"]


def _load_array(
    path: Path, shape: tuple[int, ...], dtypes: tuple[str, ...], fix: str
) -> np.ndarray:
    """The array at ``path`` memory-mapped, once its header says ``shape`` and one of
    ``dtypes`` and that the file holds them (a header read alone: nothing is mapped before)."""
    try:
        found, found_dtype = limits.npy_file_header(path)
        limits.check(found == shape, f"{path} shape {found} != {shape}")
        limits.check(
            found_dtype in dtypes, f"{path} dtype {found_dtype} is not {' or '.join(dtypes)}"
        )
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except limits.LimitError as err:
        raise ValueError(f"{err}; {fix}") from None
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"{path}: unreadable array ({err}); {fix}") from None


def _not_a_dataset(root: Path, missing: list[str], fix: str) -> str:
    """Why a folder lacking dataset files is refused, with the fix for what it does hold: a
    checkpoint given where a dataset belongs, a folder of clips not yet preprocessed."""
    if CHECKPOINT.holds(root):
        return (
            f"{root} is a checkpoint, not a dataset; pass the dataset it was trained on "
            "(made by `python -m vae preprocess CLIPS --out data/NAME`)"
        )
    if sources.holds_audio_files(root):
        return (
            f"{root} holds audio clips, not a dataset; preprocess them first with "
            f"`python -m vae preprocess {root} --out data/NAME`, then pass data/NAME"
        )
    return f"{root}: incomplete dataset, missing {', '.join(missing)}; {fix}"


def load_dataset(path: Path) -> SpectrogramSet:
    """Open a dataset folder written by :func:`preprocess`, validating every file against config.

    Raises:
        ValueError: naming the folder and the fix, for any missing, unknown or mismatched part.
    """
    root = Path(path)
    if not root.exists():  # a preprocess killed mid-swap may have left the old one aside
        storage.tidy_leftovers(root.absolute(), CONFIG_FILE)
    fix = f"re-run `python -m vae preprocess SRC --out {root}`"
    if not root.is_dir():
        raise ValueError(f"{root}: no dataset folder here; {fix}")
    names = (CONFIG_FILE, FEATURES_FILE, WAVEFORMS_FILE, MANIFEST_FILE)
    missing = [name for name in names if not (root / name).is_file()]
    if missing:
        raise ValueError(_not_a_dataset(root, missing, fix))
    info = storage.read_json(root / CONFIG_FILE, what="not a dataset config", fix=fix)
    try:
        version = info["format_version"]
    except (KeyError, TypeError) as err:
        raise ValueError(f"{root / CONFIG_FILE}: not a dataset config ({err}); {fix}") from None
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{root}: dataset format_version {version!r} is not supported "
            f"(this version reads {FORMAT_VERSION}); {fix}"
        )
    try:
        cfg = FeatureConfig.from_dict(info["feature_config"])
        label_names = limits.check_label_names(info["label_names"], 0)
        fingerprint = str(info["fingerprint"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{root / CONFIG_FILE}: bad or missing field ({err}); {fix}") from None
    manifest_bytes = (root / MANIFEST_FILE).stat().st_size
    if manifest_bytes > MAX_MANIFEST_BYTES:
        raise ValueError(
            f"{root / MANIFEST_FILE}: {manifest_bytes:,} bytes, more than the "
            f"{MAX_MANIFEST_BYTES:,} of {limits.MAX_CLIPS:,} clips; {fix}"
        )
    try:
        with (root / MANIFEST_FILE).open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header, rows = tuple(next(reader, ())), list(reader)
    except (ValueError, csv.Error) as err:
        raise ValueError(f"{root / MANIFEST_FILE}: unreadable ({err}); {fix}") from None
    if header != MANIFEST_COLUMNS or any(len(r) != len(MANIFEST_COLUMNS) for r in rows):
        raise ValueError(f"{root / MANIFEST_FILE}: expected columns {MANIFEST_COLUMNS}; {fix}")
    ids, srcs, labels, speakers, starts, splits = (
        (list(c) for c in zip(*rows, strict=True)) if rows else [[]] * 6
    )
    n = len(ids)
    if n > limits.MAX_CLIPS:
        raise ValueError(f"{root / MANIFEST_FILE}: {n:,} clips, at most {limits.MAX_CLIPS:,}")
    feats = _load_array(root / FEATURES_FILE, (n, *cfg.shape), ("float16",), fix)
    waves = _load_array(root / WAVEFORMS_FILE, (n, cfg.clip_samples), DTYPES, fix)
    problems = [
        (set(splits) <= set(SPLITS), f"{MANIFEST_FILE} has splits other than {SPLITS}"),
        (set(labels) - {""} <= set(label_names), f"{MANIFEST_FILE} has unknown labels"),
        (all(s.isdigit() for s in starts), f"{MANIFEST_FILE} has a non-integer start"),
        (
            dataset_fingerprint(cfg, ids) == fingerprint,
            f"{MANIFEST_FILE} does not match the fingerprint in {CONFIG_FILE}",
        ),
    ]
    for ok, problem in problems:
        if not ok:
            raise ValueError(f"{root}: {problem}; {fix}")
    return SpectrogramSet(
        root=root,
        config=cfg,
        info=info,
        features=feats,
        waveforms=Waveforms(waves),
        ids=ids,
        sources=srcs,
        labels=labels,
        speakers=speakers,
        starts=np.array([int(s) for s in starts], dtype=np.int64),
        splits=splits,
        label_names=label_names,
    )


def load_split_tensor(ds: SpectrogramSet, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (n, bins, frames) float32, label indices (n,) int64) of one split."""
    import torch

    index = ds.split_indices(split)
    feats = torch.from_numpy(np.asarray(ds.features[index], dtype=np.float32))
    return feats, torch.from_numpy(ds.label_indices[index]).long()
