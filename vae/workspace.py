"""What is on disk: the datasets and checkpoints a user has made, for pickers and listings."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from vae import checkpoints as ck
from vae import dataset as ds
from vae import judge as jg

DATA_ROOT = Path("data")
CHECKPOINT_ROOT = Path("checkpoints")
# A dataset or checkpoint folder's name, the same rule for the app and the CLI: one path
# component that every file system, shell and URL takes as it is.
FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")


def folder_name(text: str) -> str:
    """A user-typed dataset or checkpoint folder name, checked (surrounding spaces dropped).

    Raises:
        ValueError: empty, too long, or holding anything but letters, digits, ``_ - .``.
    """
    name = text.strip()
    if not FOLDER_NAME.fullmatch(name):
        raise ValueError(
            f"{text!r} is not a usable folder name; use letters, digits, '-', '_' or '.', "
            "up to 80 characters, starting with a letter or digit (e.g. my-clips)"
        )
    return name


@dataclass(frozen=True)
class Item:
    """A dataset or checkpoint folder with the few facts a listing shows."""

    path: Path
    kind: str  # "dataset" or "checkpoint"
    summary: str


DAMAGED = "damaged: {} is not readable JSON (open it to see why)"


def _read_json(path: Path) -> dict | None:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _folders_with(root: Path, marker: str) -> list[Path]:
    """Visible folders under ``root`` holding ``marker`` (hidden ones are work in progress)."""
    return [p.parent for p in sorted(Path(root).glob(f"*/{marker}")) if p.parent.name[0] != "."]


def list_datasets(root: Path = DATA_ROOT) -> list[Item]:
    """Folders under ``root`` holding a preprocessed dataset, newest first. One whose
    config.json is torn is listed as damaged, so that opening it says why."""
    items = []
    for folder in _folders_with(root, ds.FEATURES_FILE):
        info = _read_json(folder / ds.CONFIG_FILE)
        if info is None:
            items.append(Item(folder, "dataset", DAMAGED.format(ds.CONFIG_FILE)))
            continue
        counts = info.get("counts", {})
        feats = info.get("feature_config", {})
        summary = (
            f"{counts.get('kept', '?')} clips, {len(info.get('label_names', []))} labels, "
            f"{feats.get('sample_rate', '?')} Hz"
        )
        items.append(Item(folder, "dataset", summary))
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
        info = _read_json(folder / config)
        if info is None:
            items.append(Item(folder, "checkpoint", DAMAGED.format(config)))
            continue
        model = info.get("model_config", {})
        kind = "conditional" if model.get("n_labels") else "unconditional"
        summary = f"epoch {info.get('epoch', '?')}, latent {model.get('latent_dim', '?')}, {kind}"
        if folder in best:
            summary = f"the judge's best epoch of {folder.parent.name}: {summary}"
        items.append(Item(folder, "checkpoint", summary))
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
        accuracy = info.get("val_accuracy")
        shown = f"{accuracy:.1%}" if isinstance(accuracy, float) else "?"
        labels = len(info.get("label_names", []))
        items.append(Item(cfg_path.parent, "judge", f"{labels} labels, {shown} on validation"))
    return sorted(items, key=lambda i: i.path.stat().st_mtime, reverse=True)
