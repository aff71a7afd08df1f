"""The data commands: ``preprocess`` (clips -> a spectrogram dataset), ``demo-data`` (the
offline synthetic set) and ``fetch-fsdd`` (the Free Spoken Digit Dataset)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from vae.audio.features import PRESETS, SETTING_TYPES, SETTINGS, FeatureConfig, get_preset
from vae.cli import (
    BAR_DELAY,
    SEED,
    as_shown,
    named_as_the_app_would,
    number,
    progress_bar,
    report_skipped,
    tqdm_class,
)
from vae.data import archive
from vae.options import flag


def _feature_config(args: argparse.Namespace) -> FeatureConfig:
    """The preset with the overrides given on the command line."""
    given = {name: getattr(args, name) for name in SETTINGS}
    return get_preset(args.preset).overridden(**{k: v for k, v in given.items() if v is not None})


def cmd_preprocess(args: argparse.Namespace) -> int:
    from vae.storage.output_folder import DATASET, check_output_folder, existing_dataset

    named_as_the_app_would(args.out)
    check_output_folder(args.out, DATASET)  # before any line is printed or file unpacked
    replaced = existing_dataset(Path(args.out))
    if replaced is not None and not args.overwrite:
        from vae.storage.output_folder import refuse_replacing_dataset

        refuse_replacing_dataset(Path(args.out), Path(args.src))
    cfg = _feature_config(args)
    print(
        f"features: {cfg.n_bins} bins x {cfg.n_frames} frames "
        f"({cfg.clip_seconds:.3f} s at {cfg.sample_rate} Hz)",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(prefix="vae-unpacked-") as tmp:
        _preprocess(args, cfg, _unpacked(Path(args.src), Path(tmp) / "clips"))
    if replaced is not None and replaced.checkpoints:
        named = ", ".join(str(p) for p in replaced.checkpoints)
        print(
            f"warning: replaced the dataset in {args.out}; these checkpoints were trained on "
            f"the old one and now point at other data: {named}",
            file=sys.stderr,
        )
    return 0


def _unpacked(src: Path, target: Path) -> Path:
    """``src`` itself, or for a zip / tar(.gz) file its audio unpacked safely into ``target``."""

    if not (src.is_file() and archive.is_archive(src.name)):
        return src
    done = archive.extract_archive(src, target)
    for name, reason in done.skipped:
        report_skipped(f"{src.name}:{name}", reason)
    print(f"unpacked {len(done.kept)} audio files from {src}", file=sys.stderr)
    return done.target


def _preprocess(args: argparse.Namespace, cfg, src: Path) -> int:
    from vae.data.dataset import preprocess

    update, close = progress_bar("preprocess", "file")
    try:
        summary = preprocess(
            src,
            Path(args.out),
            cfg,
            labels=args.labels,
            val_fraction=args.val_fraction,
            seed=args.seed,
            progress=update,
            overwrite=args.overwrite,
        )
    finally:
        close()
    for file, reason in summary.refused:
        report_skipped(file, reason)
    labels = ", ".join(f"{k}: {v}" for k, v in summary.per_label.items()) or "none"
    print(
        f"kept {summary.kept} clips, refused {len(summary.refused)} files "
        f"in {summary.seconds:.1f} s -> {summary.out}\nclips per label: {labels}"
    )
    return 0


def cmd_demo_data(args: argparse.Namespace) -> int:
    from vae.data.sources import make_demo_set

    update, close = progress_bar("demo-data")
    try:
        out = make_demo_set(Path(args.out), args.per_class, seed=args.seed, progress=update)
    finally:
        close()
    print(f"wrote the synthetic demo set to {out}")
    return 0


def cmd_fetch_fsdd(args: argparse.Namespace) -> int:
    tqdm = tqdm_class()

    from vae.data.fsdd import fetch_fsdd

    bar = tqdm(
        desc="fetch-fsdd",
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        dynamic_ncols=True,
        delay=BAR_DELAY,
    )

    def update(done: int, total: int) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    try:
        summary, got = fetch_fsdd(Path(args.out), args.url, args.sha256, progress=update)
    finally:
        bar.close()
    check = "verified" if got.verified else "not verified (no checksum known; pass --sha256)"
    print(f"downloaded {got.bytes} bytes, SHA-256 {got.sha256} {check}", file=sys.stderr)
    print(f"wrote {len(summary.kept)} recordings to {summary.target}")
    return 0


def _preset_values(name: str) -> str:
    """What each preset sets ``name`` to, for --help: "fsdd 8000, music 22050, seed 22050"."""

    def shown(value: object) -> str:
        if value is None:
            return "none"
        return f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)

    return ", ".join(
        f"{preset} {shown(PRESETS[preset].setting(name))}" for preset in sorted(PRESETS)
    )


def add_preprocess(sub: argparse._SubParsersAction) -> None:
    """The ``preprocess`` command (listed first in ``--help``)."""
    s = sub.add_parser("preprocess", help="turn a folder of clips into a spectrogram dataset")
    s.add_argument(
        "src",
        help="folder of audio files (searched recursively), or a zip / tar.gz (unpacked "
        f"safely: {archive.Limits().describe()})",
    )
    s.add_argument(
        "--out",
        required=True,
        help="dataset folder to write: new or empty (or a dataset, with --overwrite)",
    )
    s.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the dataset already in --out, whatever its source (its files are "
        "replaced, others kept); without it any existing dataset is refused, as checkpoints "
        "trained on it would point at other data (they are named)",
    )
    s.add_argument(
        "--preset",
        default="fsdd",
        choices=sorted(PRESETS),
        help="feature preset (default fsdd); each override below names the presets' values",
    )
    s.add_argument(
        "--labels",
        default="auto",
        choices=["auto", "fsdd", "folder", "none"],
        help="fsdd: {digit}_{speaker}_{i}.wav names; folder: sub-folder names; auto: guess",
    )
    s.add_argument(
        "--val-fraction",
        type=number(float, 0.0, 0.9),
        default=0.1,
        help="share held out (per label), 0 to 0.9",
    )
    s.add_argument("--seed", type=SEED, default=0, help="seed of the train/validation split")
    g = s.add_argument_group("feature overrides (default: the preset's values)")
    for name, described in SETTINGS.items():
        # The flags' ranges are the settings' own (vae.audio.features.FeatureConfig's fields);
        # the config checks them again, with the sizes they make together.
        lo, hi = described.bounds()
        text = f"{described.help}, {as_shown(lo)} to {as_shown(hi)} ({_preset_values(name)})"
        g.add_argument(flag(name), type=number(SETTING_TYPES[name], lo, hi), help=text)
    s.set_defaults(func=cmd_preprocess)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``demo-data`` and ``fetch-fsdd`` commands."""
    s = sub.add_parser("demo-data", help="write the offline synthetic demo set")
    s.add_argument("out", help="folder to write")
    s.add_argument(
        "--per-class", type=number(int, 1, 10_000), default=40, help="clips per class, 1 to 10,000"
    )
    s.add_argument("--seed", type=SEED, default=0, help="seed of the generator")
    s.set_defaults(func=cmd_demo_data)

    s = sub.add_parser("fetch-fsdd", help="download the Free Spoken Digit Dataset recordings")
    s.add_argument("out", help="folder for the {digit}_{speaker}_{i}.wav recordings")
    s.add_argument("--url", help="archive URL (default: the v1.0.9 release; env VAE_FSDD_URL)")
    s.add_argument("--sha256", help="expected SHA-256 of the archive (env VAE_FSDD_SHA256)")
    s.set_defaults(func=cmd_fetch_fsdd)
