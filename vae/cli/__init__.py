"""``python -m vae``: every capability of the library, headless.

Each command prints progress on long work, exits 0 on success and 1 with a one-line
``error: ...`` otherwise (set VAE_DEBUG=1 for the traceback); bad files inside a batch are
reported and skipped.

One module per group of commands, each with an ``add_parsers(sub)`` (data also
``add_preprocess``, listed first) beside the handlers it wires: :mod:`vae.cli.data`
(preprocess, demo-data, fetch-fsdd), :mod:`vae.cli.train`, :mod:`vae.cli.synthesis`
(reconstruct, interpolate, sample, decode, map) and :mod:`vae.cli.evaluation` (evaluate,
judge, vocoder, export). This module holds what they share: the error class, the progress
bars, the skipped-file line.

Public: ``main`` (what ``vae/__main__.py`` calls). The command modules are internal: nothing
outside this package imports them.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from vae import __version__
from vae.progress import Progress

__all__ = ["main"]

DESCRIPTION = """Sound VAE Studio: turn a folder of short clips into a VAE you can play with.

typical run:
  python -m vae preprocess CLIPS --out data/mine --preset fsdd
  python -m vae train data/mine --out checkpoints/mine --epochs 30
  python -m vae interpolate checkpoints/mine a.wav b.wav --steps 8 --out out/
"""


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 1."""


BAR_DELAY = 0.5  # seconds before a progress bar shows: quick work prints only its result


def tqdm_class() -> type:
    """tqdm's bar class with its monitor thread off: preprocessing forks its workers only from
    a single-threaded process, and a bar of any earlier command would leave that thread."""
    from tqdm import tqdm

    tqdm.monitor_interval = 0
    return tqdm


def progress_bar(desc: str, unit: str = "clip") -> tuple[Progress, Callable[[], None]]:
    """A tqdm bar on stderr driven by progress(done, total) callbacks."""
    tqdm = tqdm_class()
    bar = tqdm(desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, delay=BAR_DELAY)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)  # shown once the work has taken half a second

    return update, bar.close


def report_skipped(name: object, reason: object) -> None:
    """One stderr line per refused file, whatever its name holds: control characters (a
    newline in a file name) are shown escaped, so each refusal stays one line."""
    reason = str(reason).removeprefix(f"{name}: ")  # an error that names its file already
    line = f"skipped {name}: {reason}"
    print("".join(c if c.isprintable() else repr(c)[1:-1] for c in line), file=sys.stderr)


def named_as_the_app_would(out: str) -> None:
    """Refuse an --out folder whose name the app refuses, so both faces make the same ones."""
    from vae.storage.folder_names import folder_name

    try:
        folder_name(Path(out).name)
    except ValueError as err:
        raise CliError(f"--out {out}: {err}") from None


class Parser(argparse.ArgumentParser):
    """argparse with its errors as one line, ``error: --flag ...``, exit status 2 (argparse
    prints the usage first and the flag as "argument --flag")."""

    def error(self, message: str) -> NoReturn:
        message = message.removeprefix("argument ")
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def as_shown(value: float) -> str:
    """A bound as people write it: 10,000 or 0.01."""
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def number(kind: type, lo: float, hi: float) -> Callable[[str], float]:
    """An argparse type: a finite ``kind`` (int or float) from ``lo`` to ``hi`` inclusive,
    else argparse's one-line error naming the flag and the range (``nan``, ``inf`` and
    ``1e300`` never reach the code that would make silent audio or overflow from them)."""
    what = "an integer" if kind is int else "a number"

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {what} (from {as_shown(lo)} to {as_shown(hi)})"
            ) from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(
                f"{text} is not a finite number; give one from {as_shown(lo)} to {as_shown(hi)}"
            )
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(
                f"{text} is outside the range {as_shown(lo)} to {as_shown(hi)}"
            )
        return value

    return parse


def finite(text: str) -> float:
    """An argparse type: any finite float (its config checks the range); nan and inf are
    refused in one line naming the flag."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return value


SEED = number(int, 0, 2**32 - 1)  # every --seed: numpy's and torch's generators take it


def add_phase_option(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--phase",
        default="auto",
        choices=["auto", "vocoder", "griffin-lim"],
        help="features to sound: auto uses the checkpoint's vocoder only where it beat "
        "Griffin-Lim on the validation copies when trained, else Griffin-Lim",
    )


DATA_COMMANDS = ("preprocess", "demo-data", "fetch-fsdd")  # vae.cli.data's, torch-free


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``python -m vae`` parser: each command group adds its own sub-commands.

    ``command``, the first argument: a data command gets a parser of the data commands alone,
    so ``preprocess`` never imports torch (train's options do: 1 GB and 8 s of a run). Every
    argument after the command goes to its sub-parser, so its help, errors and values are the
    same as the full parser's."""
    from vae.cli import data

    fmt = argparse.RawDescriptionHelpFormatter
    p = Parser(prog="python -m vae", description=DESCRIPTION, formatter_class=fmt)
    p.add_argument("--version", action="version", version=f"sound-vae-studio {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data.add_preprocess(sub)
    if command in DATA_COMMANDS:
        data.add_parsers(sub)
        return p
    from vae.cli import evaluation, synthesis, train

    train.add_parsers(sub)
    synthesis.add_parsers(sub)
    evaluation.add_parsers(sub)
    data.add_parsers(sub)
    return p


def _not_a_checkpoint(path: Path) -> str | None:
    """Why ``path``, given where a checkpoint belongs, is none, with the way on: a dataset or
    a folder of clips (whose loading errors would say "train one with ... --out path")."""
    from vae.data import sources
    from vae.storage.output_folder import CHECKPOINT, DATASET

    if not path.is_dir() or CHECKPOINT.holds(path):
        return None
    from vae.workspace import list_checkpoints, newest_usable

    shipped = newest_usable(list_checkpoints())
    example = f" such as {shipped.path}" if shipped else ""
    if DATASET.holds(path):
        return (
            f"{path} is a dataset, not a checkpoint; pass a checkpoint folder{example}, or "
            f"train one: python -m vae train {path} --out checkpoints/NAME"
        )
    if sources.holds_audio_files(path):
        return (
            f"{path} holds audio clips, not a checkpoint; pass a checkpoint folder{example}, "
            f"or make one: python -m vae preprocess {path} --out data/NAME, then "
            "python -m vae train data/NAME --out checkpoints/NAME"
        )
    return None


def _check_checkpoint_args(args: argparse.Namespace) -> None:
    """Refuse a dataset or a folder of clips given where a checkpoint belongs, before any
    command loads it."""
    for name in ("checkpoint", "ckpt"):
        given = getattr(args, name, None)
        if isinstance(given, str) and (why := _not_a_checkpoint(Path(given))):
            raise CliError(why)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        _check_checkpoint_args(args)
        return args.func(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except (CliError, ValueError, OSError, RuntimeError) as err:
        if os.environ.get("VAE_DEBUG"):
            raise
        text = str(err).strip().splitlines()
        print(f"error: {text[0] if text else type(err).__name__}", file=sys.stderr)
        return 1
