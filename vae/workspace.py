"""What is on disk: the datasets and checkpoints a user has made, for pickers and listings."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from vae.audio.features import FeatureConfig
from vae.data import dataset as ds
from vae.evaluation import judge as jg
from vae.model import checkpoints as ck
from vae.model.conv_vae import ModelConfig
from vae.storage.files import read_json
from vae.storage.folder_names import folder_name as folder_name  # the app pages take it here

DATA_ROOT = Path("data")
CHECKPOINT_ROOT = Path("checkpoints")


@dataclass(frozen=True)
class Item:
    """A dataset or checkpoint folder with the few facts a listing shows."""

    path: Path
    kind: str  # "dataset", "checkpoint" or "judge"
    summary: str
    damaged: bool = False  # never made current by default: only picked by hand, to see why


DAMAGED = "damaged: {} (open it to see why)"


def _is_damaged(summary: str) -> bool:
    return summary.startswith(DAMAGED.split("{", 1)[0])


# Where a number belongs, a number: a string there (Markdown, a link) marks the folder
# damaged, so that no page shows it and no new session starts on it.
def _count(value: object) -> bool:
    """A whole number >= 0 (JSON's true and false are not numbers)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _counts(value: object) -> bool:
    """A mapping of names to counts (clips per label, per split)."""
    return isinstance(value, Mapping) and all(_count(v) for v in value.values())


def _share(value: object) -> bool:
    """A finite fraction in [0, 1] (an accuracy)."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and math.isfinite(value) and 0 <= value <= 1


def _names(value: object) -> bool:
    """A list of strings (label names): shown escaped, counted, never formatted as numbers."""
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


_MISSING = object()


def _field(info: Mapping, dotted: str) -> object:
    """``info["a"]["b"]`` for ``"a.b"``, or ``_MISSING`` when a level is absent."""
    for part in dotted.split("."):
        if not isinstance(info, Mapping) or part not in info:
            return _MISSING
        info = info[part]
    return info


def _wrong_fields(info: Mapping, checks: Mapping[str, Callable[[object], bool]]) -> str | None:
    """The first field present in ``info`` that fails its check, named (its value is not
    repeated: it may be a hostile string), or None."""
    for dotted, ok in checks.items():
        value = _field(info, dotted)
        if value is not _MISSING and not ok(value):
            return f"{dotted} is not {_WHAT[ok]}"
    return None


_WHAT = {
    _count: "a whole number",
    _counts: "a set of counts",
    _share: "a fraction from 0 to 1",
    _names: "a list of names",
}


CHECKPOINT_FIELDS = {
    "format_version": _count,
    "epoch": _count,
    "dataset.train_clips": _count,
    "dataset.val_clips": _count,
    "label_names": _names,
}
DATASET_FIELDS = {
    "format_version": _count,
    **{f"counts.{name}": _count for name in ("kept", "refused", "files")},
    "counts.per_label": _counts,
    "counts.per_split": _counts,
    "label_names": _names,
}
JUDGE_FIELDS = {"format_version": _count, "val_accuracy": _share, "label_names": _names}


def _read_json(path: Path) -> dict | None:
    """A listed folder's JSON file, or None when unreadable, too big, too deep or not an
    object (``vae.storage.files.read_json``: a 100,000-bracket file is refused, not a traceback)."""
    try:
        info = read_json(path)
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


# Summaries already made, by file: (path) -> ((inode, mtime_ns, size) of each file read,
# summary). The sidebar lists every folder on every rerun of every session; a folder's
# summary is made again only when a file it reads changes on disk (a 100 MB config elsewhere
# slowed a slider from 249 to 857 ms when it was parsed on each one).
_SUMMARIES: dict[str, tuple[tuple[tuple[int, int, int], ...], str]] = {}
_MAX_SUMMARIES = 1024


def _stamp(file: Path) -> tuple[int, int, int]:
    try:
        stat = file.stat()
    except OSError:
        return (0, 0, -1)
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _summary(file: Path, summarise: Callable[[Path], str], *also: Path) -> str:
    """``summarise(file)``, made once per change of ``file`` (or of the files ``also`` that
    it reads too) on disk and kept process-wide."""
    key, stamp = str(file.absolute()), tuple(_stamp(f) for f in (file, *also))
    hit = _SUMMARIES.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    summary = summarise(file)
    if len(_SUMMARIES) >= _MAX_SUMMARIES:
        _SUMMARIES.pop(next(iter(_SUMMARIES)), None)
    _SUMMARIES[key] = (stamp, summary)
    return summary


def _folders_with(root: Path, marker: str) -> list[Path]:
    """Visible folders under ``root`` holding ``marker`` (hidden ones are work in progress)."""
    return [p.parent for p in sorted(Path(root).glob(f"*/{marker}")) if p.parent.name[0] != "."]


def _dataset_summary(file: Path) -> str:
    """A dataset's clips, labels and sample rate; "damaged" when its config.json is torn or
    holds anything but a number where one belongs (counts, the feature config)."""
    info = _read_json(file)
    if info is None:
        return DAMAGED.format(f"{file.name} is not readable JSON")
    wrong = _wrong_fields(info, DATASET_FIELDS)
    try:
        feats = FeatureConfig.from_dict(info["feature_config"])
    except (KeyError, TypeError, ValueError, OverflowError) as err:
        wrong = wrong or f"a bad feature config ({str(err)[:120]})"
    if wrong is not None:
        return DAMAGED.format(f"{file.name}: {wrong}")
    kept, labels = info.get("counts", {}).get("kept", "?"), info.get("label_names", [])
    return f"{kept} clips, {len(labels)} labels, {feats.sample_rate} Hz"


def _checkpoint_summary(file: Path) -> str:
    """A checkpoint's epoch, latent size and kind; "damaged" when its config.json is torn,
    refused (too big, too deep) or holds configs the library refuses (out of range)."""
    info = _read_json(file)
    if info is None:
        return DAMAGED.format(f"{file.name} is not readable JSON")
    wrong = _wrong_fields(info, CHECKPOINT_FIELDS)
    if wrong is not None:
        return DAMAGED.format(f"{file.name}: {wrong}")
    try:
        FeatureConfig.from_dict(info["feature_config"])
        model = ModelConfig.from_dict(info["model_config"])
        if not _count(model.latent_dim) or not _count(model.n_labels):
            raise TypeError("latent_dim and n_labels must be whole numbers")
    except (KeyError, TypeError, ValueError, OverflowError) as err:
        return DAMAGED.format(f"{file.name} holds a bad config ({str(err)[:120]})")
    problem = _latents_problem(file.parent / ck.LATENTS_FILE, model.latent_dim)
    if problem is not None:
        return DAMAGED.format(f"{ck.LATENTS_FILE} {problem}")
    kind = "conditional" if model.n_labels else "unconditional"
    return f"epoch {info.get('epoch', '?')}, latent {model.latent_dim}, {kind}"


def _latents_problem(file: Path, latent_dim: int) -> str | None:
    """What makes a checkpoint's latents.npz unusable by its declared shapes alone (None:
    nothing, or no file); its values (NaN) are refused when a page reads them."""
    if not file.is_file():
        return None
    try:
        ck.check_latent_headers(file, latent_dim)
    except ValueError as err:
        return str(err).removeprefix(f"{file}: ").split("; ")[0]
    return None


def list_datasets(root: Path = DATA_ROOT) -> list[Item]:
    """Folders under ``root`` holding a preprocessed dataset, newest first. One whose
    config.json is torn is listed as damaged, so that opening it says why."""
    items = []
    for folder in _folders_with(root, ds.FEATURES_FILE):
        summary = _summary(folder / ds.CONFIG_FILE, _dataset_summary)
        items.append(Item(folder, "dataset", summary, _is_damaged(summary)))
    return sorted(items, key=lambda i: i.path.stat().st_mtime, reverse=True)


def list_checkpoints(root: Path = CHECKPOINT_ROOT) -> list[Item]:
    """Folders under ``root`` holding a checkpoint, and the judge's best epoch of a run
    (``run/best``, a complete checkpoint of its own), newest first; one with a torn
    config.json is listed as damaged, so that opening it says why."""
    items = []
    weights, config = ck.WEIGHTS_FILE, ck.CONFIG_FILE
    best_weights = f"{ck.BEST_DIR}/{weights}"
    best = [p for p in _folders_with(root, best_weights) if p.parent.name[0] != "."]
    for folder in _folders_with(root, weights) + best:
        summary = _summary(folder / config, _checkpoint_summary, folder / ck.LATENTS_FILE)
        damaged = _is_damaged(summary)
        if folder in best:
            summary = f"the judge's best epoch of {folder.parent.name}: {summary}"
        items.append(Item(folder, "checkpoint", summary, damaged))
    return sorted(items, key=lambda i: i.path.stat().st_mtime, reverse=True)


JUDGE_ROOT = Path("judges")


def list_judges(root: Path = JUDGE_ROOT, checkpoints: Path = CHECKPOINT_ROOT) -> list[Item]:
    """Judge folders: under ``root``, and a ``judge/`` inside any checkpoint; newest first."""
    found = list(Path(root).glob(f"*/{jg.CONFIG_FILE}")) + list(
        Path(checkpoints).glob(f"*/judge/{jg.CONFIG_FILE}")
    )
    items = []
    for cfg_path in found:
        info = _read_json(cfg_path)
        if info is None or not (cfg_path.parent / jg.WEIGHTS_FILE).is_file():
            continue
        wrong = _wrong_fields(info, JUDGE_FIELDS)
        if wrong is not None:
            summary = DAMAGED.format(f"{jg.CONFIG_FILE}: {wrong}")
            items.append(Item(cfg_path.parent, "judge", summary, True))
            continue
        accuracy = info.get("val_accuracy")
        shown = "?" if accuracy is None else f"{accuracy:.1%}"
        labels = len(info.get("label_names", []))
        items.append(Item(cfg_path.parent, "judge", f"{labels} labels, {shown} on validation"))
    return sorted(items, key=lambda i: i.path.stat().st_mtime, reverse=True)


def newest_usable(items: list[Item]) -> Item | None:
    """The first item not damaged (lists are newest first): what a new session opens. A
    damaged folder is never chosen for anyone; a person may still pick it to see why."""
    return next((item for item in items if not item.damaged), None)
