"""Training, the one function both faces call: configs, the folder lock, resume, stop.

:func:`train` trains a ConvVAE on a preprocessed dataset and keeps a checkpoint folder up to
date after every epoch (the epoch loop itself is :class:`vae.training.loop.Trainer`): a line in
metrics.jsonl, then model.pt, config.json and latents.npz, each written atomically. A kill at
any moment loses at most the epoch in progress; ``resume=True`` continues from the last
finished one. Everything random is seeded: the shuffle order and the sampling noise are
functions of (seed, epoch), so a resumed run repeats an uninterrupted one exactly.

Under ``torchrun`` (see :mod:`vae.training.distributed`) the same call runs on every rank: rank 0
takes the folder lock, checks the folder, reads the dataset and the checkpoint and shares
the :class:`Plan` it made with the others (an error on rank 0 reaches them all); each rank
then trains on its share of every global batch.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vae.data.dataset import SpectrogramSet, load_dataset
from vae.harness import Stop, cpu_count, torch_threads
from vae.model import checkpoints as ck
from vae.model.conv_vae import MODEL_SIZES, ModelConfig
from vae.progress import OnEvent, ignore_event
from vae.storage.files import tidy_leftovers
from vae.storage.folder_lock import LOCK_FILE, FolderLock
from vae.storage.output_folder import CHECKPOINT, check_output_folder
from vae.training import distributed as dist
from vae.training.loop import Trainer, TrainerSetup, TrainingDiverged
from vae.training.model_options import MODEL_OPTIONS
from vae.training.train_config import TrainConfig, check_precision, resolve_device

__all__ = ["TrainResult", "TrainingDiverged", "train"]

# Written beside a run by vae.jobs.runner (the app's launcher): part of a checkpoint folder, not
# foreign.
JOB_FILES = ("job.json", "train.log")
# Written into a checkpoint by stage 2: vae.training.sharpen's STATE_FILE and RECORD_FILE, which it
# takes from here (it imports this module). Part of the folder too.
STAGE_FILES = ("sharpen.pt", "sharpen.json")
# The model a fresh run may be given: the CLI's model options, and the label embedding size
# (a library-only knob).
OVERRIDE_KEYS = (*MODEL_OPTIONS, "label_dim")


@dataclass
class TrainResult:
    """What a :func:`train` call did: the checkpoint's epoch, this run's epoch records."""

    out_dir: Path
    epoch: int
    history: list[dict[str, Any]]
    stopped: bool
    seconds: float


@dataclass(frozen=True)
class Plan:
    """What rank 0 decides before training, under the folder lock, and shares with the others.

    ``dataset`` is rank 0's, loaded while planning; it stays behind when the plan is sent
    (the other ranks load their own and check its fingerprint).
    """

    cfg: TrainConfig
    model_config: ModelConfig
    label_names: list[str]
    state: dict[str, Any] | None  # model.pt of the checkpoint to resume
    fingerprint: str
    dataset: SpectrogramSet | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "dataset": None}


def train(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    train_config: TrainConfig | None = None,
    model_overrides: dict[str, Any] | None = None,
    resume: bool = False,
    progress: OnEvent | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train a ConvVAE on the dataset ``data_dir``, keeping the checkpoint ``out_dir`` current.

    Args:
        train_config: how to train; None means defaults, or on resume the stored config.
            On resume a given config is used as is (e.g. more ``epochs``).
        model_overrides: latent_dim, channels, size (a MODEL_SIZES name), conditional,
            label_dim; ignored on resume (the checkpoint fixes the model).
        resume: continue the checkpoint in ``out_dir`` (fresh start when there is none).
        progress: called with small dicts: {"event": "start" | "batch" | "epoch" | "note" |
            "stopped" | "done", ...}.
        should_stop: polled between batches; True stops, keeping the last finished epoch.
            SIGTERM does the same when training runs in the main thread.
    Raises:
        ValueError: bad arguments, a busy or foreign ``out_dir``, a dataset that cannot train.
        CheckpointError: resuming a checkpoint made from other data or features.
        TrainingDiverged: the loss became NaN or infinite.
    """
    started = time.perf_counter()
    out, data = Path(out_dir), Path(data_dir)
    world = dist.from_env()
    emit = (progress or ignore_event) if world.is_main else ignore_event
    stop = Stop(should_stop)
    dist.start(world)
    try:
        with dist.peer_watch(world, out), _locked_on_main(world, out):
            # Rank 0 checks the folder, loads the dataset and the checkpoint and decides; the
            # others wait for its plan, or its error.
            plan = dist.on_main(
                world, lambda: make_plan(out, data, train_config, model_overrides, resume, emit)
            )
            ds, device = _join(world, plan, data)
            setup = TrainerSetup(
                ds,
                out,
                plan.cfg,
                plan.model_config,
                plan.label_names,
                device,
                emit=emit,
                stop=stop,
                resume=plan.state,
                world=world,
            )
            threads = plan.cfg.threads or max(1, cpu_count() // world.local_size)
            with torch_threads(threads if device.type == "cpu" else None):
                with stop.on_sigterm():
                    last, history, stopped = Trainer(setup).run()
    finally:
        dist.stop()
    seconds = time.perf_counter() - started
    emit({"event": "done", "epoch": last, "stopped": stopped, "seconds": seconds})
    return TrainResult(out, last, history, stopped, seconds)


# ------------------------------------------------------------------------------ the steps


@contextlib.contextmanager
def _locked_on_main(world: dist.World, out: Path) -> Iterator[None]:
    """Rank 0 holds ``out``'s folder lock until the block ends, and first tidies what writers
    killed mid-write left; when it cannot take the lock, every rank raises."""
    with contextlib.ExitStack() as held:

        def lock() -> None:
            # Before the lock and the tidying: a folder of other things is left untouched.
            check_output_folder(out, CHECKPOINT)
            out.mkdir(parents=True, exist_ok=True)
            held.enter_context(FolderLock(out))
            _tidy(out)

        dist.on_main(world, lock)
        yield


def make_plan(
    out: Path,
    data_dir: Path,
    train_config: TrainConfig | None,
    overrides: dict[str, Any] | None,
    resume: bool,
    emit: OnEvent,
) -> Plan:
    """Check the locked folder ``out`` against ``resume``, load the dataset and the
    checkpoint to resume, and decide the configs; rank 0 alone runs this."""
    has = _prepare_out(out, resume, emit)
    ds = load_dataset(data_dir)
    ckpt = ck.load_checkpoint(out) if has else None
    if ckpt is not None and ckpt.state.get("stage"):  # written by stage 2 (sharpen.json gone)
        raise ValueError(_sharpened(out))
    cfg = train_config or (TrainConfig.from_dict(ckpt.train_config) if ckpt else TrainConfig())
    model_config, label_names = _restore(ckpt, ds, out, overrides, emit)
    state = ckpt.state if ckpt else None
    return Plan(cfg, model_config, label_names, state, ds.fingerprint, dataset=ds)


def _join(world: dist.World, plan: Plan, data_dir: Path) -> tuple[SpectrogramSet, torch.device]:
    """This rank's dataset and device, checked on every rank before any of them trains."""
    ds, device, error = plan.dataset, None, None
    try:
        if ds is None:
            ds = load_dataset(data_dir)
        if ds.fingerprint != plan.fingerprint:
            raise ValueError(
                f"{data_dir}: on rank {world.rank} this is dataset {ds.fingerprint}, on rank 0 "
                f"{plan.fingerprint}; give every machine the same dataset"
            )
        device = dist.device_for(world, resolve_device(plan.cfg.device))
        check_precision(plan.cfg.precision, device)
    except (ValueError, OSError) as err:
        error = str(err)
    dist.check_all(world, error)
    assert ds is not None and device is not None
    return ds, device


# ------------------------------------------------------------------------------ the folder


def _prepare_out(out: Path, resume: bool, emit: OnEvent) -> bool:
    """Check ``out`` against ``resume``; True when a checkpoint is there to resume."""
    if ck.has_checkpoint(out):
        if not resume:
            raise ValueError(
                f"{out}: already holds a checkpoint; pass --resume to continue or choose "
                "another --out"
            )
        refuse_sharpened(out)
        return True
    ours = {LOCK_FILE, ck.METRICS_FILE, ck.LATENTS_FILE, ck.BEST_DIR, *JOB_FILES, *STAGE_FILES}
    foreign = [p.name for p in out.iterdir() if p.name not in ours]
    if foreign:
        raise ValueError(
            f"{out}: exists and is not a checkpoint folder (holds {', '.join(sorted(foreign)[:3])})"
            "; choose another --out"
        )
    if resume:
        emit({"event": "note", "message": f"{out} holds no checkpoint yet: starting fresh"})
    # leftovers of a run killed in epoch 1, and a stage 2 of a model that is gone
    for name in (ck.METRICS_FILE, ck.LATENTS_FILE, *STAGE_FILES):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / ck.BEST_DIR, ignore_errors=True)  # and a best epoch of a run now gone
    return False


def _sharpened(out: Path) -> str:
    return (
        f"{out}: has been sharpened (stage 2), so stage 1 cannot resume: the model.pt "
        "sharpen wrote has an empty optimizer, and training stage 1 again would undo the "
        "sharpened decoder's optimizer history; train into a new --out, or continue "
        f"sharpening with `python -m vae sharpen {out} --resume --epochs N`"
    )


def refuse_sharpened(out: str | Path) -> None:
    """Refuse to resume stage 1 in a checkpoint that stage 2 has sharpened (sharpen.json).

    Raises:
        ValueError: one line saying why and what to do instead.
    """
    if (Path(out) / STAGE_FILES[1]).is_file():
        raise ValueError(_sharpened(Path(out)))


def _tidy(out: Path) -> None:
    """Remove temp files of writers killed mid-write (we hold the lock: none is alive)."""
    for tmp in out.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    tidy_leftovers(out / ck.BEST_DIR, ck.CONFIG_FILE)  # a copy into best/ cut short


# ------------------------------------------------------------------------------ the model


def build_model_config(
    ds: SpectrogramSet, overrides: dict[str, Any] | None
) -> tuple[ModelConfig, list[str]]:
    """Model config for a fresh run on ``ds``, and the label names it conditions on."""
    o = dict(overrides or {})
    unknown = sorted(set(o) - set(OVERRIDE_KEYS))
    if unknown:
        raise ValueError(f"unknown model overrides {unknown}; choose from {OVERRIDE_KEYS}")
    channels = o.get("channels")
    if channels is None and o.get("size") is not None:
        if o["size"] not in MODEL_SIZES:
            raise ValueError(f"size={o['size']!r}; choose one of {sorted(MODEL_SIZES)}")
        channels = MODEL_SIZES[o["size"]]
    n_labels = 0
    if o.get("conditional"):
        if not ds.label_names:
            raise ValueError(
                f"{ds.root}: no labels, so no conditional model; preprocess with "
                "--labels folder|fsdd or train without --conditional"
            )
        unlabelled = int((ds.label_indices < 0).sum())
        if unlabelled:
            raise ValueError(
                f"{ds.root}: {unlabelled} clips have no label; a conditional model needs "
                "every clip labelled: fix the labels or train without --conditional"
            )
        n_labels = len(ds.label_names)
    named = ("latent_dim", "label_dim", "decoder", "res_blocks")
    kwargs = {k: o[k] for k in named if o.get(k) is not None}
    if channels is not None:
        kwargs["channels"] = tuple(int(c) for c in channels)
    cfg = ModelConfig(*ds.config.shape, n_labels=n_labels, **kwargs)
    return cfg, list(ds.label_names)


def _ignored_overrides(cfg: ModelConfig, overrides: dict[str, Any] | None) -> list[str]:
    """["name=value", ...] of the overrides that differ from a resumed model's config."""
    o = dict(overrides or {})
    if o.get("size") in MODEL_SIZES and o.get("channels") is None:
        o["channels"] = MODEL_SIZES[o.pop("size")]
    have = {"latent_dim": cfg.latent_dim, "channels": cfg.channels, "label_dim": cfg.label_dim}
    have.update(conditional=cfg.conditional, decoder=cfg.decoder, res_blocks=cfg.res_blocks)
    return [
        f"{k}={v}"
        for k, v in o.items()
        if k in have and v is not None and (tuple(v) if k == "channels" else v) != have[k]
    ]


def _restore(
    ckpt: ck.Checkpoint | None,
    ds: SpectrogramSet,
    out: Path,
    overrides: dict | None,
    emit: OnEvent,
) -> tuple[ModelConfig, list[str]]:
    """Model config and label names of the run; for a resume, checks the data and tidies."""
    if ckpt is None:
        return build_model_config(ds, overrides)
    if ckpt.dataset_info.get("fingerprint") != ds.fingerprint:
        raise ck.CheckpointError(
            f"checkpoint {out} was trained on dataset {ckpt.dataset_info.get('path')} "
            f"(fingerprint {ckpt.dataset_info.get('fingerprint')}); {ds.root} is "
            f"{ds.fingerprint}: resume with the same dataset or train a new model"
        )
    ck.check_compatible(ckpt, ds.config, f"dataset {ds.root}")
    ignored = _ignored_overrides(ckpt.model_config, overrides)
    if ignored:
        note = f"resuming keeps the checkpoint's model; ignoring {', '.join(ignored)}"
        emit({"event": "note", "message": note})
    dropped = ck.trim_metrics(out, ckpt.epoch)
    if dropped:
        note = f"dropped {dropped} metrics lines after epoch {ckpt.epoch} (an unfinished run)"
        emit({"event": "note", "message": note})
    return ckpt.model_config, ckpt.label_names
