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
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from vae import __version__
from vae.progress import Progress

DESCRIPTION = """Sound VAE Studio: turn a folder of short clips into a VAE you can play with.

typical run:
  python -m vae preprocess CLIPS --out data/mine --preset fsdd
  python -m vae train data/mine --out checkpoints/mine --epochs 30
  python -m vae interpolate checkpoints/mine a.wav b.wav --steps 8 --out out/
"""


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 1."""


BAR_DELAY = 0.5  # seconds before a progress bar shows: quick work prints only its result


def _tqdm() -> type:
    """tqdm's bar class with its monitor thread off: preprocessing forks its workers only from
    a single-threaded process, and a bar of any earlier command would leave that thread."""
    from tqdm import tqdm

    tqdm.monitor_interval = 0
    return tqdm


def _bar(desc: str, unit: str = "clip") -> tuple[Progress, Callable[[], None]]:
    """A tqdm bar on stderr driven by progress(done, total) callbacks."""
    tqdm = _tqdm()
    bar = tqdm(desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, delay=BAR_DELAY)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)  # shown once the work has taken half a second

    return update, bar.close


def _skipped(name: object, reason: object) -> None:
    """One stderr line per refused file, whatever its name holds: control characters (a
    newline in a file name) are shown escaped, so each refusal stays one line."""
    line = f"skipped {name}: {reason}"
    print("".join(c if c.isprintable() else repr(c)[1:-1] for c in line), file=sys.stderr)


def _named_as_the_app_would(out: str) -> None:
    """Refuse an --out folder whose name the app refuses, so both faces make the same ones."""
    from vae.workspace import folder_name

    try:
        folder_name(Path(out).name)
    except ValueError as err:
        raise CliError(f"--out {out}: {err}") from None


def _phase_option(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--phase",
        default="auto",
        choices=["auto", "vocoder", "griffin-lim"],
        help="features to sound: auto uses the checkpoint's vocoder only where it beat "
        "Griffin-Lim on the validation copies when trained, else Griffin-Lim",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m vae`` parser: each command group adds its own sub-commands."""
    from vae.cli import data, evaluation, synthesis, train

    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="python -m vae", description=DESCRIPTION, formatter_class=fmt)
    p.add_argument("--version", action="version", version=f"sound-vae-studio {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data.add_preprocess(sub)
    train.add_parsers(sub)
    synthesis.add_parsers(sub)
    evaluation.add_parsers(sub)
    data.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
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
