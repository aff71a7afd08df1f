"""The ``train`` command: its options made from ``TrainConfig``'s and ``ModelOptions``'
fields (one flag per field, help and choices from the field's Option), and its handler, which
turns training's events into a bar per epoch and a line per epoch and scoring."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from vae import cli
from vae.cli import finite, named_as_the_app_would, tqdm_class
from vae.model.losses import Losses
from vae.options import Option, flag
from vae.training.model_options import MODEL_OPTIONS, ModelOptions, parse_channels
from vae.training.sharpen_config import OPTIONS as SHARPEN_OPTIONS
from vae.training.sharpen_config import SharpenConfig
from vae.training.train_config import JUDGE_GROUP, OPTIONS, TrainConfig

# Floats must be finite (nan passes "at least" checks the wrong way; inf overflows); each
# field's own range is checked by its config, in one line naming it.
_TYPES = {"int": int, "float": finite}


def _add_option(group: argparse._ActionsContainer, name: str, field_type: str, described: Option):
    """One flag for a config field; its default None (False for a switch) means "not given"
    (on --resume: the checkpoint's stored value)."""
    if field_type == "bool":
        default = None if name in OPTIONS or name in SHARPEN_OPTIONS else False
        group.add_argument(flag(name), action="store_true", default=default, help=described.help)
        return
    kind = _TYPES.get(field_type.split(" ")[0])
    choices = list(described.choices) or None
    group.add_argument(flag(name), type=kind, choices=choices, help=described.help)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``train`` command."""
    s = sub.add_parser("train", help="train a VAE on a preprocessed dataset")
    s.add_argument("data", help="dataset folder written by preprocess")
    s.add_argument("--out", required=True, help="checkpoint folder (saved after every epoch)")
    for field in dataclasses.fields(ModelOptions):
        _add_option(s, field.name, str(field.type), MODEL_OPTIONS[field.name])
    s.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    judge = s.add_argument_group(JUDGE_GROUP)
    for field in dataclasses.fields(TrainConfig):
        described = OPTIONS[field.name]
        _add_option(judge if described.group else s, field.name, str(field.type), described)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser(
        "sharpen",
        help="stage 2: train a checkpoint's decoder against a spectrogram critic (encoder frozen)",
    )
    s.add_argument("ckpt", help="checkpoint folder made by train (sharpened in place)")
    s.add_argument("--data", help="the dataset it was trained on (default: the recorded path)")
    s.add_argument("--resume", action="store_true", help="continue a stage begun before")
    for field in dataclasses.fields(SharpenConfig):
        _add_option(s, field.name, str(field.type), SHARPEN_OPTIONS[field.name])
    s.set_defaults(func=cmd_sharpen)


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """Options given on the command line over the stored config (resume) or the defaults."""
    from vae.model.checkpoints import has_checkpoint, read_config

    base = TrainConfig()
    if args.resume and has_checkpoint(args.out):
        base = TrainConfig.from_dict(read_config(args.out)["train_config"])
    given = {name: getattr(args, name) for name in OPTIONS if getattr(args, name) is not None}
    if args.judge is not None:  # resumed from any directory, the run finds it again
        given["judge"] = str(Path(args.judge).absolute())
    cfg = dataclasses.replace(base, **given)
    if args.judge is not None and not cfg.judge_every:
        raise cli.CliError("--judge DIR scores the model only with --judge-every N (epochs)")
    return cfg


def _model_options(args: argparse.Namespace) -> ModelOptions:
    """The model flags given (a fresh run's model; --resume keeps the checkpoint's)."""
    given = {name: getattr(args, name) for name in MODEL_OPTIONS}
    given["channels"] = parse_channels(args.channels) if args.channels else None
    return ModelOptions(**given)


def judge_line(event: dict) -> str:
    """One line for a scored epoch: the judge's accuracies, the Fréchet distances, the best."""

    def pct(key: str) -> str:
        return "-" if event.get(key) is None else f"{event[key]:.0%}"

    best = f"best epoch {event['best_epoch']}" + (" (new)" if event["improved"] else "")
    stale = f", {event['stale']} without improvement" if event["stale"] else ""
    return (
        f"judge epoch {event['epoch']}: heard right {pct('samples_accuracy')} of samples, "
        f"{pct('reconstructed_accuracy')} of reconstructions; Fréchet distance samples "
        f"{event['samples_frechet']:.2f}, reconstructions {event['reconstructed_frechet']:.2f}; "
        f"{best}{stale}"
    )


class EpochBars:
    """One progress bar per epoch on stderr, labelled "epoch E/N", replaced by the epoch's
    summary line when it ends."""

    def __init__(self, epochs: int, label: str = "epoch"):
        self.tqdm, self.epochs, self.label = tqdm_class(), epochs, label
        self.epoch: int | None = None
        self.bar = None

    def update(self, epoch: int, batch: int, batches: int) -> None:
        if self.epoch != epoch or self.bar is None:
            self.close()
            self.epoch, self.bar = (
                epoch,
                self.tqdm(
                    total=batches,
                    desc=f"{self.label} {epoch}/{self.epochs}",
                    unit="batch",
                    file=sys.stderr,
                    dynamic_ncols=True,
                    delay=cli.BAR_DELAY,  # read now: a test sets it to 0
                    leave=False,  # the epoch's summary line stays instead
                ),
            )
        self.bar.update(batch - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def say(self, line: str) -> None:
        self.tqdm.write(line)  # stdout, as every result line (scripts read it); bars on stderr


def cmd_train(args: argparse.Namespace) -> int:
    from vae.training.distributed import from_env
    from vae.training.train import train

    named_as_the_app_would(args.out)
    cfg = _train_config(args)
    overrides = _model_options(args).overrides()
    bars = EpochBars(cfg.epochs)
    say = bars.say

    def progress(event: dict) -> None:
        kind = event.get("event")
        if kind == "batch":
            bars.update(event["epoch"], event["batch"], event["batches"])
        elif kind == "epoch":
            bars.close()  # the epoch is over: its summary replaces its bar
            val = event.get("val_loss")
            first, *rest = Losses.names()  # every term, so a new one is printed too
            terms = ", ".join(f"{name} {event['train_' + name]:.3f}" for name in rest)
            say(
                f"epoch {event['epoch']}/{cfg.epochs}: {first} {event['train_' + first]:.3f} "
                f"({terms}) val {'-' if val is None else f'{val:.3f}'} in {event['seconds']:.1f} s"
            )
        elif kind == "judge":
            say(judge_line(event))
        elif "message" in event:
            say(str(event["message"]))

    try:
        result = train(
            Path(args.data),
            Path(args.out),
            train_config=cfg,
            model_overrides=overrides,
            resume=args.resume,
            progress=progress,
        )
    finally:
        bars.close()  # cleared: what follows starts on a line of its own
    if from_env().is_main:  # under torchrun, rank 0 speaks for every rank
        print(f"checkpoint at epoch {result.epoch} -> {args.out}")
    return 0


def _sharpen_config(args: argparse.Namespace) -> SharpenConfig:
    """Options given on the command line over the stored settings (resume) or the defaults."""
    from vae.model.checkpoints import read_json
    from vae.training.sharpen import RECORD_FILE

    base, record = SharpenConfig(), Path(args.ckpt) / RECORD_FILE
    if args.resume and record.is_file():
        base = SharpenConfig.from_dict(read_json(record).get("config", {}))
    given = {name: getattr(args, name) for name in SHARPEN_OPTIONS}
    given = {name: value for name, value in given.items() if value is not None}
    if args.judge is not None:  # resumed from any directory, the stage finds it again
        given["judge"] = str(Path(args.judge).absolute())
    return dataclasses.replace(base, **given)


def sharpen_line(event: dict) -> str:
    """One line for a finished stage epoch."""
    val = event.get("val_spectral")
    return (
        f"sharpen {event['stage_epoch']}/{event['stage_epochs']} (epoch {event['epoch']}): "
        f"critic {event['critic']:.3f}, adversarial {event['adversarial']:.3f}, features "
        f"{event['features']:.3f}, spectral {event['spectral']:.4f} "
        f"val {'-' if val is None else f'{val:.4f}'} in {event['seconds']:.1f} s"
    )


def cmd_sharpen(args: argparse.Namespace) -> int:
    from vae.training.sharpen import sharpen

    cfg = _sharpen_config(args)
    bars = EpochBars(cfg.epochs, "sharpen")

    def progress(event: dict) -> None:
        kind = event.get("event")
        if kind == "batch":
            bars.update(event["epoch"], event["batch"], event["batches"])
        elif kind == "sharpen":
            bars.close()
            bars.say(sharpen_line(event))
        elif kind == "judge":
            bars.say(judge_line(event))
        elif "message" in event:
            bars.say(str(event["message"]))

    try:
        result = sharpen(
            Path(args.ckpt),
            Path(args.data) if args.data else None,
            config=cfg,
            resume=args.resume,
            progress=progress,
        )
    finally:
        bars.close()
    print(f"sharpened {result.stage_epoch} stage epochs -> {args.ckpt}")
    return 0
