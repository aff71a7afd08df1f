"""The synthesis commands: ``reconstruct``, ``interpolate``, ``sample``, ``decode`` (audio from a
checkpoint) and ``map`` (the latent map as CSV)."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from vae.cli import SEED, CliError, add_phase_option, number, progress_bar, report_skipped

if TYPE_CHECKING:
    import numpy as np


def load_synth(path: str, phase: str = "auto"):
    from vae.synthesis.inference import Synthesiser

    return Synthesiser.load(path, phase=phase)


def _write_clips(synth, feats, names: list[str], out: Path) -> np.ndarray:
    """Griffin-Lim over the batch, one peak-normalised WAV per name; returns the waves."""
    from vae.audio.io import write_wav

    waves = synth.to_audio(feats)  # (n, clip_samples)
    for name, wave in zip(names, waves, strict=True):
        write_wav(out / f"{name}.wav", wave, synth.config.sample_rate)
    return waves


def _label_for_file(synth, path: Path, label: str | None, option: str = "--label") -> int:
    """The label to condition on: the option, else an FSDD-style name, else an error."""
    if not synth.conditional:
        return -1
    if label is not None:
        return synth.label_index(label)
    from vae.data.sources import label_for

    try:
        return synth.label_index(label_for(path, path.parent, "fsdd")[0])
    except ValueError:
        raise CliError(
            f"{path}: this checkpoint is conditional on {synth.label_names}; pass {option}"
        ) from None


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from vae.audio.io import AudioError

    synth, out = load_synth(args.checkpoint, args.phase), Path(args.out)
    failures, done = 0, 0
    update, close = progress_bar("reconstruct", "file")
    for i, name in enumerate(args.audio):
        path = Path(name)
        try:
            clip = synth.clip_from_file(path, _label_for_file(synth, path, args.label))
            recon = synth.reconstruct(clip.features.unsqueeze(0), [clip.label])
            _write_clips(synth, recon, [f"{path.stem}-recon"], out)
            done += 1
        except (AudioError, CliError, ValueError) as err:
            failures += 1
            report_skipped(path, err)
        update(i + 1, len(args.audio))
    close()
    plural = "s" if done != 1 else ""
    skipped = f", skipped {failures}" if failures else ""
    print(f"wrote {done} reconstruction{plural} to {out}{skipped}")
    if done == 0:
        raise CliError("no file could be reconstructed")
    return 0


def _clip_arg(synth, arg: str, data_dir: str | None, label: str | None, option: str):
    """An interpolation end: an audio file, or a clip id of the checkpoint's dataset."""
    path = Path(arg)
    if path.is_file():
        return synth.clip_from_file(path, _label_for_file(synth, path, label, option))
    root = data_dir or synth.checkpoint.dataset_info.get("path")
    if not root or not Path(root).is_dir():
        raise CliError(f"{arg}: not a file, and no dataset to look it up in (pass --data DIR)")
    return synth.clip_from_dataset(_dataset(str(root)), arg, label)


@functools.lru_cache(maxsize=2)
def _dataset(root: str):
    """A dataset opened once for all the clip ids of one command."""
    from vae.data.dataset import load_dataset

    return load_dataset(root)


# Clips decoded and sounded at once by sample and interpolate: the memory of a batch (about
# 0.9 MB a clip at the fsdd preset) whatever --n or --steps, as each batch is written and
# dropped before the next.
BATCH = 32
MAX_SAMPLES, MAX_STEPS = 10_000, 1_000
MAX_CODE = 100.0  # |z| and --along amounts: the prior's codes lie within a few units


def cmd_interpolate(args: argparse.Namespace) -> int:
    from vae.audio.io import CrossfadeWriter, write_wav

    synth, out = load_synth(args.checkpoint, args.phase), Path(args.out)
    clips = [
        _clip_arg(synth, args.a, args.data, args.label_a, "--label-a"),
        _clip_arg(synth, args.b, args.data, args.label_b, "--label-b"),
        *(_clip_arg(synth, c, args.data, None, "a dataset clip id") for c in args.more),
    ]
    total = (len(clips) - 1) * (args.steps - 1) + 1  # legs meet on a clip heard once
    width, done = len(str(total - 1)), 0
    out.mkdir(parents=True, exist_ok=True)
    fade = int(0.05 * synth.config.sample_rate)  # Synthesiser.morph_path's 50 ms
    morph = CrossfadeWriter(out / "morph.wav", synth.config.sample_rate, fade)
    try:
        mode = "slerp" if args.slerp else "lerp"
        for waves in synth.morph_steps(clips, args.steps, mode, BATCH):  # (b, samples)
            for wave in waves:
                write_wav(out / f"step{done:0{width}d}.wav", wave, synth.config.sample_rate)
                morph.add(wave)
                done += 1
    except BaseException:
        morph.close(keep=False)
        raise
    morph.close()
    route = " to ".join(c.name for c in clips)
    print(f"wrote {done} steps from {route} and morph.wav to {out}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    synth, out = load_synth(args.checkpoint, args.phase), Path(args.out)
    if synth.conditional and args.label is None:
        raise CliError(f"this checkpoint is conditional on {synth.label_names}; pass --label")
    if not synth.conditional and args.label is not None:
        raise CliError(
            f"--label {args.label}: {args.checkpoint} is unconditional (it cannot be told what "
            "to say); drop --label, or train with --conditional"
        )
    codes = synth.sample_codes(args.n, args.label, args.temperature, args.seed)  # (n, D): small
    label = synth.label_index(args.label) if synth.conditional else None
    prefix = f"sample-{args.label}-" if args.label is not None else "sample-"
    width = len(str(args.n - 1))
    update, close = progress_bar("sample")
    try:
        for start in range(0, args.n, BATCH):
            z = codes[start : start + BATCH]  # (b, D)
            feats = synth.decode(z, None if label is None else [label] * len(z))
            names = [f"{prefix}{i:0{width}d}" for i in range(start, start + len(z))]
            _write_clips(synth, feats, names, out)
            update(start + len(z), args.n)
    finally:
        close()
    print(f"wrote {args.n} samples to {out}")
    return 0


def _code(text: str, dim: int) -> np.ndarray:
    """--z: ``dim`` comma-separated finite values within +-MAX_CODE, else one line naming it."""
    import math

    import numpy as np

    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and abs(value) <= MAX_CODE):
            raise CliError(
                f"--z: {part.strip()!r} is not a number from {-MAX_CODE:g} to {MAX_CODE:g}; "
                f"give {dim} comma-separated values"
            )
        values.append(value)
    if len(values) != dim:
        raise CliError(f"--z has {len(values)} values; this checkpoint's code has {dim}")
    return np.array(values, np.float32)


def _amounts(text: str, k: int) -> np.ndarray:
    """--along: amounts (k,) within +-MAX_CODE standard deviations, else one line naming it."""
    import numpy as np

    from vae.synthesis.latent import parse_amounts

    try:
        with np.errstate(over="ignore"):  # 1e300 becomes inf in float32: refused below
            amounts = parse_amounts(text, k)
    except ValueError as err:
        raise CliError(f"--along {err}") from None
    if not (np.isfinite(amounts).all() and np.abs(amounts).max(initial=0) <= MAX_CODE):
        raise CliError(
            f"--along {text}: each AMOUNT must be a number from {-MAX_CODE:g} to {MAX_CODE:g} "
            "(standard deviations)"
        )
    return amounts


def cmd_decode(args: argparse.Namespace) -> int:
    from vae.audio.io import write_wav
    from vae.synthesis.latent import along_directions, checkpoint_axes

    synth, out = load_synth(args.checkpoint, args.phase), Path(args.out)
    if synth.conditional and args.label is None:
        raise CliError(f"this checkpoint is conditional on {synth.label_names}; pass --label")
    if args.z is not None:
        z = _code(args.z, synth.latent_dim)
    else:
        centre, dirs, spread = checkpoint_axes(synth.checkpoint.path, synth.latent_dim)
        z = along_directions(centre, dirs, spread, _amounts(args.along or "", len(dirs)))
    labels = [synth.label_index(args.label)] if synth.conditional else None
    feats = synth.decode(z[None, :], labels)  # (1, bins, frames)
    write_wav(out, synth.to_audio(feats)[0], synth.config.sample_rate)
    print(f"wrote {out} from code " + ", ".join(f"{v:+.2f}" for v in z))
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    from vae.model.checkpoints import read_latents
    from vae.storage.files import write_csv
    from vae.synthesis.projection import MAP_CACHE, cached_project, project

    synth = load_synth(args.checkpoint)
    latents = read_latents(args.checkpoint)
    # run in a studio folder (one with data/), a t-SNE map is kept in data/.maps by its
    # latents, where Explore reads it: fitted once; elsewhere no folder is made
    if MAP_CACHE.parent.is_dir():
        proj = cached_project(latents["means"], args.method, seed=args.seed)
    else:
        proj = project(latents["means"], args.method, seed=args.seed)
    names = synth.label_names
    rows = [
        (clip_id, names[label] if 0 <= label < len(names) else "", f"{x:.5f}", f"{y:.5f}")
        for clip_id, label, (x, y) in zip(
            latents["ids"], latents["labels"], proj.coords, strict=True
        )
    ]
    write_csv(Path(args.out), ("id", "label", "x", "y"), rows)
    print(f"wrote {len(rows)} points ({args.method}) to {args.out}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``reconstruct``, ``interpolate``, ``sample``, ``decode`` and ``map`` commands."""
    s = sub.add_parser("reconstruct", help="encode and decode audio files")
    s.add_argument("checkpoint", help="checkpoint folder")
    s.add_argument("audio", nargs="+", help="audio files")
    s.add_argument("--out", required=True, help="folder for <name>-recon.wav files")
    s.add_argument("--label", help="label to condition on (conditional models)")
    add_phase_option(s)
    s.set_defaults(func=cmd_reconstruct)

    s = sub.add_parser(
        "interpolate", help="morph clip A into clip B (and on to C ...) through the latent space"
    )
    s.add_argument("checkpoint", help="checkpoint folder")
    s.add_argument("a", help="audio file or dataset clip id")
    s.add_argument("b", help="audio file or dataset clip id")
    s.add_argument(
        "more", nargs="*", metavar="C", help="further clips: the morph goes A -> B -> C ..."
    )
    s.add_argument(
        "--steps",
        type=number(int, 2, MAX_STEPS),
        default=8,
        help=f"clips from A to B (each leg) inclusive, 2 to {MAX_STEPS:,}",
    )
    s.add_argument("--out", required=True, help="folder for step*.wav and morph.wav")
    s.add_argument("--slerp", action="store_true", help="spherical instead of linear path")
    s.add_argument("--data", help="dataset to look clip ids up in (default: the training set)")
    s.add_argument("--label-a", help="label of A (conditional models)")
    s.add_argument("--label-b", help="label of B (conditional models)")
    add_phase_option(s)
    s.set_defaults(func=cmd_interpolate)

    s = sub.add_parser("sample", help="generate clips from the prior")
    s.add_argument("checkpoint", help="checkpoint folder")
    s.add_argument(
        "--n",
        type=number(int, 1, MAX_SAMPLES),
        default=8,
        help=f"how many clips, 1 to {MAX_SAMPLES:,} (made {BATCH} at a time)",
    )
    s.add_argument("--out", required=True, help="folder for sample-*.wav files")
    s.add_argument("--label", help="label to generate (conditional models)")
    s.add_argument(
        "--temperature",
        type=number(float, 0.01, 10.0),
        default=1.0,
        help="scale of the prior noise, 0.01 to 10",
    )
    s.add_argument("--seed", type=SEED, help="seed for repeatable samples")
    add_phase_option(s)
    s.set_defaults(func=cmd_sample)

    s = sub.add_parser("decode", help="decode one point of the latent space to a WAV")
    s.add_argument("checkpoint", help="checkpoint folder")
    s.add_argument("--out", required=True, help="WAV file to write")
    s.add_argument(
        "--along",
        help="DIRECTION=AMOUNT,... in standard deviations along the main "
        "directions of the latent space, e.g. 1=2.0,3=-1 (the Synthesise sliders); "
        f"AMOUNT from {-MAX_CODE:g} to {MAX_CODE:g}",
    )
    s.add_argument(
        "--z",
        help=f"the raw code instead, D comma-separated values from {-MAX_CODE:g} to {MAX_CODE:g}",
    )
    s.add_argument("--label", help="label to generate (conditional models)")
    add_phase_option(s)
    s.set_defaults(func=cmd_decode)

    s = sub.add_parser("map", help="2-D coordinates of every clip's latent mean (the Explore map)")
    s.add_argument("checkpoint", help="checkpoint folder")
    s.add_argument("--out", required=True, help="CSV file to write: id, label, x, y")
    s.add_argument("--method", default="pca", choices=["pca", "tsne"], help="projection")
    s.add_argument("--seed", type=SEED, default=0, help="seed of t-SNE")
    s.set_defaults(func=cmd_map)
