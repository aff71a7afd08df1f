"""The synthesis commands: ``reconstruct``, ``interpolate``, ``sample``, ``decode`` (audio from a
checkpoint) and ``map`` (the latent map as CSV)."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from vae.cli import CliError, _bar, _phase_option, _skipped

if TYPE_CHECKING:
    import numpy as np


def _synth(path: str, phase: str = "auto"):
    from vae.inference import Synthesiser

    return Synthesiser.load(path, phase=phase)


def _write_clips(synth, feats, names: list[str], out: Path) -> np.ndarray:
    """Griffin-Lim over the batch, one peak-normalised WAV per name; returns the waves."""
    from vae.audio import write_wav

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
    from vae.sources import label_for

    try:
        return synth.label_index(label_for(path, path.parent, "fsdd")[0])
    except ValueError:
        raise CliError(
            f"{path}: this checkpoint is conditional on {synth.label_names}; pass {option}"
        ) from None


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from vae.audio import AudioError

    synth, out = _synth(args.checkpoint, args.phase), Path(args.out)
    failures, done = 0, 0
    update, close = _bar("reconstruct", "file")
    for i, name in enumerate(args.audio):
        path = Path(name)
        try:
            clip = synth.clip_from_file(path, _label_for_file(synth, path, args.label))
            recon = synth.reconstruct(clip.features.unsqueeze(0), [clip.label])
            _write_clips(synth, recon, [f"{path.stem}-recon"], out)
            done += 1
        except (AudioError, CliError, ValueError) as err:
            failures += 1
            _skipped(path, err)
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
    from vae.dataset import load_dataset

    return load_dataset(root)


def cmd_interpolate(args: argparse.Namespace) -> int:
    from vae.audio import write_wav

    synth, out = _synth(args.checkpoint, args.phase), Path(args.out)
    clips = [
        _clip_arg(synth, args.a, args.data, args.label_a, "--label-a"),
        _clip_arg(synth, args.b, args.data, args.label_b, "--label-b"),
        *(_clip_arg(synth, c, args.data, None, "a dataset clip id") for c in args.more),
    ]
    waves, morph = synth.morph_path(clips, args.steps, "slerp" if args.slerp else "lerp")
    width = len(str(len(waves) - 1))
    for i, wave in enumerate(waves):
        write_wav(out / f"step{i:0{width}d}.wav", wave, synth.config.sample_rate)
    write_wav(out / "morph.wav", morph, synth.config.sample_rate)
    route = " to ".join(c.name for c in clips)
    print(f"wrote {len(waves)} steps from {route} and morph.wav to {out}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    synth, out = _synth(args.checkpoint, args.phase), Path(args.out)
    if synth.conditional and args.label is None:
        raise CliError(f"this checkpoint is conditional on {synth.label_names}; pass --label")
    if not synth.conditional and args.label is not None:
        raise CliError(
            f"--label {args.label}: {args.checkpoint} is unconditional (it cannot be told what "
            "to say); drop --label, or train with --conditional"
        )
    _, feats = synth.sample(args.n, args.label, args.temperature, args.seed)
    prefix = f"sample-{args.label}-" if args.label is not None else "sample-"
    width = len(str(args.n - 1))
    names = [f"{prefix}{i:0{width}d}" for i in range(args.n)]
    _write_clips(synth, feats, names, out)
    print(f"wrote {args.n} samples to {out}")
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    import numpy as np

    from vae.audio import write_wav
    from vae.latent import along_directions, checkpoint_axes, parse_amounts

    synth, out = _synth(args.checkpoint, args.phase), Path(args.out)
    if synth.conditional and args.label is None:
        raise CliError(f"this checkpoint is conditional on {synth.label_names}; pass --label")
    if args.z is not None:
        z = np.array([float(v) for v in args.z.split(",")], np.float32)
        if z.shape != (synth.latent_dim,):
            raise CliError(
                f"--z has {len(z)} values; this checkpoint's code has {synth.latent_dim}"
            )
    else:
        centre, dirs, spread = checkpoint_axes(synth.checkpoint.path, synth.latent_dim)
        z = along_directions(centre, dirs, spread, parse_amounts(args.along or "", len(dirs)))
    labels = [synth.label_index(args.label)] if synth.conditional else None
    feats = synth.decode(z[None, :], labels)  # (1, bins, frames)
    write_wav(out, synth.to_audio(feats)[0], synth.config.sample_rate)
    print(f"wrote {out} from code " + ", ".join(f"{v:+.2f}" for v in z))
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    from vae.checkpoints import read_latents
    from vae.projection import project
    from vae.storage import write_csv

    synth = _synth(args.checkpoint)
    latents = read_latents(args.checkpoint)
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
    _phase_option(s)
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
    s.add_argument("--steps", type=int, default=8, help="clips from A to B (each leg) inclusive")
    s.add_argument("--out", required=True, help="folder for step*.wav and morph.wav")
    s.add_argument("--slerp", action="store_true", help="spherical instead of linear path")
    s.add_argument("--data", help="dataset to look clip ids up in (default: the training set)")
    s.add_argument("--label-a", help="label of A (conditional models)")
    s.add_argument("--label-b", help="label of B (conditional models)")
    _phase_option(s)
    s.set_defaults(func=cmd_interpolate)

    s = sub.add_parser("sample", help="generate clips from the prior")
    s.add_argument("checkpoint", help="checkpoint folder")
    s.add_argument("--n", type=int, default=8, help="how many clips")
    s.add_argument("--out", required=True, help="folder for sample-*.wav files")
    s.add_argument("--label", help="label to generate (conditional models)")
    s.add_argument("--temperature", type=float, default=1.0, help="scale of the prior noise")
    s.add_argument("--seed", type=int, help="seed for repeatable samples")
    _phase_option(s)
    s.set_defaults(func=cmd_sample)

    s = sub.add_parser("decode", help="decode one point of the latent space to a WAV")
    s.add_argument("checkpoint", help="checkpoint folder")
    s.add_argument("--out", required=True, help="WAV file to write")
    s.add_argument(
        "--along",
        help="DIRECTION=AMOUNT,... in standard deviations along the main "
        "directions of the latent space, e.g. 1=2.0,3=-1 (the Synthesise sliders)",
    )
    s.add_argument("--z", help="the raw code instead, D comma-separated values")
    s.add_argument("--label", help="label to generate (conditional models)")
    _phase_option(s)
    s.set_defaults(func=cmd_decode)

    s = sub.add_parser("map", help="2-D coordinates of every clip's latent mean (the Explore map)")
    s.add_argument("checkpoint", help="checkpoint folder")
    s.add_argument("--out", required=True, help="CSV file to write: id, label, x, y")
    s.add_argument("--method", default="pca", choices=["pca", "tsne"], help="projection")
    s.add_argument("--seed", type=int, default=0, help="seed of t-SNE")
    s.set_defaults(func=cmd_map)
