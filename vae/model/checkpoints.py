"""Checkpoint folders: save and load them atomically and safely.

A checkpoint is a folder:
    model.pt       {"format_version", "epoch", "model", "optimizer", "rng", ...}: tensors and
                   plain values only, read back with ``torch.load(weights_only=True)``
    config.json    feature, model and training configs, label names, dataset fingerprint
    metrics.jsonl  one JSON object per line, appended by training
    latents.npz    per-clip posterior means, label indices and ids (no pickles)
Every file is written to a temp file in the same folder and renamed over the old one, so a
kill at any moment leaves the previous version or the new one, never half a file.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from vae.audio.features import FeatureConfig
from vae.harness import append_line as append_jsonl  # noqa: F401  (the checkpoint API's)
from vae.harness import save_state
from vae.model.conv_vae import ConvVAE, ModelConfig, check_model_size
from vae.model.prior import PRIOR_FILE
from vae.storage import limits
from vae.storage.files import (  # noqa: F401  (re-exported: the checkpoint API writes with these)
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    raise_if_disk_full,
    read_json,
    read_versioned_json,
    versions,
    write_atomically,
)
from vae.storage.safe_load import guarded_torch_load, load_state_into

FORMAT_VERSION = 1
WEIGHTS_FILE, CONFIG_FILE = "model.pt", "config.json"
METRICS_FILE, LATENTS_FILE = "metrics.jsonl", "latents.npz"
# The judge's best epoch (vae.training.judge_in_loop): a complete checkpoint folder inside the
# run's own.
BEST_DIR = "best"
# Settings that change how features sound back but not what they hold.
SYNTHESIS_FIELDS = ("griffin_lim_iters", "griffin_lim_momentum")


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be used; the message names the folder and the fix."""


# ------------------------------------------------------------------------------ atomic writes


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` atomically (``vae.harness.save_state``)."""
    return save_state(path, obj)


METRICS_MAX_BYTES = 64 << 20  # 300,000 lines: far past any run; a bigger file is read from its end


def read_metrics(
    path: str | Path, max_bytes: int | None = METRICS_MAX_BYTES
) -> list[dict[str, Any]]:
    """Records of a checkpoint's ``metrics.jsonl`` (folder or file); [] when absent.

    A torn or garbled line (a writer killed mid-line) is skipped, not fatal. Of a file over
    ``max_bytes`` (one from elsewhere) only the last ``max_bytes`` are read.
    """
    path = Path(path)
    path = path / METRICS_FILE if path.is_dir() else path
    if not path.is_file():
        return []
    with path.open("rb") as f:
        cut = max(0, f.seek(0, os.SEEK_END) - (max_bytes or 1 << 62))
        f.seek(cut)
        lines = f.read().decode("utf-8", errors="replace").splitlines()[bool(cut) :]
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # torn, or nested too deep by someone else
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def trim_metrics(out: str | Path, epoch: int) -> int:
    """Drop metrics lines of epochs after ``epoch`` (from a killed run); returns lines dropped."""
    file = Path(out) / METRICS_FILE
    if not file.is_file():
        return 0
    lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
    records = read_metrics(file, max_bytes=None)  # our own run's file: every line
    keep = [r for r in records if int(r.get("epoch", 0)) <= epoch]
    dropped = len(lines) - len(keep)
    if dropped:
        atomic_write_text(file, "".join(json.dumps(r) + "\n" for r in keep))
    return dropped


# ------------------------------------------------------------------------------ save / load


@dataclass
class Checkpoint:
    """A loaded checkpoint; ``model`` is in eval mode on the device asked for.

    ``state`` is the raw model.pt dict (optimizer, rng, step...) for resuming.
    """

    path: Path
    feature_config: FeatureConfig
    model_config: ModelConfig
    train_config: dict[str, Any]
    label_names: list[str]
    dataset_info: dict[str, Any]
    epoch: int
    model: ConvVAE
    state: dict[str, Any] = field(repr=False)
    config: dict[str, Any] = field(repr=False)


def utc_now() -> str:
    """The time now, UTC, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DistributedDataParallel and torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def has_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` holds a checkpoint's weights or config."""
    path = Path(path)
    return (path / WEIGHTS_FILE).is_file() or (path / CONFIG_FILE).is_file()


def save_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    epoch: int,
    feature_config: FeatureConfig,
    model_config: ModelConfig,
    train_config: Any,
    label_names: list[str],
    dataset_info: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write model.pt, then config.json (each atomically); returns the folder.

    Args:
        train_config: a TrainConfig (anything with ``to_dict``) or a plain dict.
        dataset_info: {"path": str, "fingerprint": str, ...} of the training data.
        extra: more weights-only-safe entries for model.pt (rng states, step...).
    """
    path = Path(path)
    state = {
        "format_version": FORMAT_VERSION,
        "epoch": int(epoch),
        "model": _unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "rng": torch.get_rng_state(),
        **(extra or {}),
    }
    atomic_torch_save(state, path / WEIGHTS_FILE)
    created = utc_now()
    try:  # an unreadable, huge or too deeply nested old config just gets a new date
        created = str(read_json(path / CONFIG_FILE)["created"])
    except (ValueError, KeyError, TypeError):
        pass
    tc = train_config.to_dict() if hasattr(train_config, "to_dict") else dict(train_config or {})
    config = {
        "format_version": FORMAT_VERSION,
        "feature_config": feature_config.to_dict(),
        "model_config": model_config.to_dict(),
        "train_config": tc,
        "label_names": list(label_names),
        "dataset": dict(dataset_info),
        "epoch": int(epoch),
        "created": created,
        "updated": utc_now(),
        "versions": versions(),
    }
    atomic_write_json(path / CONFIG_FILE, config)  # after model.pt: its epoch is never ahead
    return path


def _fix(path: Path) -> str:
    return f"train one with `python -m vae train DATA --out {path}`"


def read_config(path: str | Path) -> dict[str, Any]:
    """The checkpoint's config.json as a dict, its format version checked."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no checkpoint folder here; {_fix(path)}")
    file = path / CONFIG_FILE
    if not file.is_file():
        raise CheckpointError(
            f"{path}: incomplete checkpoint, missing {CONFIG_FILE} (training may have stopped "
            f"before its first epoch ended); resume it or {_fix(path)}"
        )
    fix = f"use the matching sound-vae-studio or {_fix(path)}"
    return read_versioned_json(
        file, FORMAT_VERSION, "checkpoint", fix, CheckpointError, "not readable JSON"
    )


def _load_weights(path: Path, device: str | torch.device, max_bytes: int) -> dict[str, Any]:
    file = path / WEIGHTS_FILE
    if not file.is_file():
        raise CheckpointError(
            f"{path}: incomplete checkpoint, missing {WEIGHTS_FILE}; {_fix(path)}"
        )
    size = file.stat().st_size
    if size > max_bytes:  # the message names what bounds it
        raise CheckpointError(
            f"{file}: {size:,} bytes, more than the {max_bytes:,} the model in {CONFIG_FILE} "
            f"and its optimizer take; {_fix(path)}"
        )
    fix = "resume from an intact copy or retrain"
    state = guarded_torch_load(file, device, max_bytes, fix, CheckpointError)
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise CheckpointError(f"{file}: not a sound-vae-studio weights file; {_fix(path)}")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{file}: weights format_version {state.get('format_version')!r} is not supported "
            f"(this version reads {FORMAT_VERSION}); use the matching sound-vae-studio or retrain"
        )
    return state


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model of a checkpoint folder from its configs and weights (eval mode).

    Raises:
        CheckpointError: missing folder or files, unknown version, corrupt or unsafe weights,
            weights that do not fit the model config.
    """
    path = Path(path)
    config = read_config(path)
    try:
        feature_config = FeatureConfig.from_dict(config["feature_config"])
        model_config = ModelConfig.from_dict(config["model_config"])
        max_bytes = limits.max_weights_bytes(check_model_size(model_config))
        label_names = limits.check_label_names(config.get("label_names", []), model_config.n_labels)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path / CONFIG_FILE}: bad config ({err}); {_fix(path)}") from None
    state = _load_weights(path, device, max_bytes)
    if not isinstance(state["model"], dict):
        raise CheckpointError(f"{path / WEIGHTS_FILE}: not a sound-vae-studio weights file")
    # NaN weights decode every code to silence: refused here, not as an all-zero WAV.
    model = ConvVAE(model_config)
    load_state_into(
        model, state["model"], path / WEIGHTS_FILE, f"the model in {CONFIG_FILE}",
        "the folder mixes files of two runs: retrain", CheckpointError,
    )  # fmt: skip
    model.to(device).eval()
    return Checkpoint(
        path=path,
        feature_config=feature_config,
        model_config=model_config,
        train_config=dict(config.get("train_config", {})),
        label_names=label_names,
        dataset_info=dict(config.get("dataset", {})),
        epoch=int(state["epoch"]),
        model=model,
        state=state,
        config=config,
    )


def feature_differences(a: FeatureConfig, b: FeatureConfig) -> list[str]:
    """["field a -> b", ...] for the fields that change the features (not Griffin-Lim's)."""
    da, db = a.to_dict(), b.to_dict()
    return [
        f"{k} {da[k]!r} vs {db.get(k)!r}"
        for k in da
        if k not in SYNTHESIS_FIELDS and da[k] != db.get(k)
    ]


def check_compatible(ckpt: Checkpoint, feature_config: FeatureConfig, what: str) -> None:
    """Raise CheckpointError unless ``feature_config`` (of ``what``) matches the checkpoint's.

    Griffin-Lim settings are ignored: they change synthesis, not the features.
    """
    diff = feature_differences(ckpt.feature_config, feature_config)
    if diff:
        raise CheckpointError(
            f"checkpoint {ckpt.path} was trained with features "
            f"{ckpt.feature_config.fingerprint()}; {what} uses {feature_config.fingerprint()} "
            f"(checkpoint vs {what}: {', '.join(diff)}); re-preprocess with the checkpoint's "
            "settings or train a new model"
        )


# ------------------------------------------------------------------------------ latents


def write_latents(path: str | Path, means: np.ndarray, labels: np.ndarray, ids: list[str]) -> Path:
    """Write latents.npz into the checkpoint folder ``path`` atomically.

    Args:
        means: (N, latent_dim) posterior means. labels: (N,) label indices, -1 unlabelled.
        ids: N clip ids, in dataset order.
    """
    means = np.asarray(means, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    id_array = np.asarray([str(i) for i in ids], dtype=np.str_)
    if means.ndim != 2 or labels.shape != (len(means),) or id_array.shape != (len(means),):
        raise ValueError(
            f"latents of shapes means {means.shape}, labels {labels.shape}, ids "
            f"{id_array.shape}: need (N, D), (N,), (N,)"
        )
    buf = io.BytesIO()
    np.savez(buf, means=means, labels=labels, ids=id_array)
    return atomic_write_bytes(Path(path) / LATENTS_FILE, buf.getvalue())


LATENT_ARRAYS = ("means", "labels", "ids")


def read_latents(path: str | Path, latent_dim: int | None = None) -> dict[str, np.ndarray]:
    """{"means" (N, D) float32, "labels" (N,) int64, "ids" (N,) str} of a checkpoint folder.

    Each array's shape and dtype are read from its header and checked (against ``latent_dim``,
    else the folder's config when it has one) before anything is decompressed; then the means
    must be finite.

    Raises:
        CheckpointError: naming the file and what is wrong with it.
    """
    path = Path(path)
    file = path / LATENTS_FILE
    if not file.is_file():
        raise CheckpointError(
            f"{file}: missing; training writes it after each epoch: resume or retrain"
        )
    n_names = None
    if (path / CONFIG_FILE).is_file():
        try:
            config = read_config(path)
            latent_dim = latent_dim or int(config["model_config"]["latent_dim"])
            n_names = len(config.get("label_names", []))
        except (KeyError, TypeError, ValueError):
            pass  # the config's own loader names what is wrong with it
    fix = "resume or retrain to rewrite it"
    check_latent_headers(file, latent_dim, fix)
    try:
        with np.load(file, allow_pickle=False) as data:
            out = {k: data[k] for k in LATENT_ARRAYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{file}: unreadable ({err}); {fix}") from None
    if not np.isfinite(out["means"]).all():
        raise CheckpointError(f"{file}: means hold NaN or inf values; {fix}")
    top = n_names or limits.MAX_LABELS  # unlabelled sets store -1 and no names
    if len(out["labels"]) and not (-1 <= out["labels"].min() and out["labels"].max() < top):
        raise CheckpointError(f"{file}: labels outside -1..{top - 1}; {fix}")
    return out


def check_latent_headers(file: Path, dim: int | None, fix: str = "resume or retrain") -> None:
    """CheckpointError unless the shapes and dtypes a latents.npz declares are usable: read
    from its headers, nothing decompressed (the sidebar calls this too)."""
    try:
        headers = limits.npz_headers(file, LATENT_ARRAYS)
    except limits.LimitError as err:
        raise CheckpointError(f"{err}; {fix}") from None
    (means, mdt), (labels, ldt), (ids, idt) = (headers[k] for k in LATENT_ARRAYS)
    n = means[0] if means else 0
    problems = [
        (len(means) == 2, f"means of shape {means}, not (N, latent_dim)"),
        (1 <= n <= limits.MAX_CLIPS, f"means of {n:,} rows: 1 to {limits.MAX_CLIPS:,} clips"),
        (dim is None or means[1:] == (dim,), f"means of shape {means} for latent_dim {dim}"),
        (mdt.kind == "f", f"means of dtype {mdt}, not float"),
        (labels == (n,), f"labels of shape {labels} for {n} means"),
        (ldt.kind in "iu", f"labels of dtype {ldt}, not integer"),
        (ids == (n,), f"ids of shape {ids} for {n} means"),
        (idt.kind == "U", f"ids of dtype {idt}, not text"),
    ]
    for ok, problem in problems:
        if not ok:
            raise CheckpointError(f"{file}: {problem}; {fix}")


def pack_checkpoint(path: str | Path) -> bytes:
    """The checkpoint folder as zip bytes for a download (:func:`write_checkpoint_zip`)."""
    buf = io.BytesIO()
    write_checkpoint_zip(path, buf)
    return buf.getvalue()


def write_checkpoint_zip(path: str | Path, out: IO[bytes]) -> None:
    """Zip the checkpoint folder into ``out`` (a file, so that a large model is never held
    in memory twice): weights, config, metrics and latents (what :func:`load_checkpoint`
    needs, unzipped into a folder of its own), and its learned prior (``vae.model.prior``) and
    vocoder (``vae.vocoder.network``) when it has them."""
    path = Path(path)
    if not has_checkpoint(path):
        raise CheckpointError(f"{path}: no checkpoint here yet; train at least one epoch")
    # vae.vocoder.network's VOCODER_DIR, WEIGHTS_FILE and CONFIG_FILE, spelt out:
    # vae.vocoder.network imports
    # this module, so importing it here would make a cycle.
    vocoder = ("vocoder/vocoder.pt", "vocoder/vocoder.json")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in (WEIGHTS_FILE, CONFIG_FILE, METRICS_FILE, LATENTS_FILE, PRIOR_FILE, *vocoder):
            if (path / name).is_file():
                zf.write(path / name, f"{path.name}/{name}")
