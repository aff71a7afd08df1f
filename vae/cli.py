"""``python -m vae``: every capability of the library, headless.

Each command prints progress on long work, exits 0 on success and 1 with a one-line
``error: ...`` otherwise (set VAE_DEBUG=1 for the traceback); bad files inside a batch are
reported and skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from vae import __version__, archive
from vae.features import PRESETS
from vae.model import DECODER_KINDS, MODEL_SIZES

if TYPE_CHECKING:
    import numpy as np

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


def _bar(desc: str, unit: str = "clip") -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A tqdm bar on stderr driven by progress(done, total) callbacks."""
    tqdm = _tqdm()
    bar = tqdm(desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, delay=BAR_DELAY)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)  # shown once the work has taken half a second

    return update, bar.close


def _feature_config(args: argparse.Namespace):
    from vae.features import get_preset

    cfg = get_preset(args.preset)
    changes = {
        "sample_rate": args.sample_rate,
        "n_fft": args.n_fft,
        "hop_length": args.hop,
        "top_db": args.top_db,
        "n_mels": args.n_mels,
        "trim_db": args.trim_db,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if args.clip_seconds is not None:
        rate = changes.get("sample_rate", cfg.sample_rate)
        changes["clip_samples"] = int(round(args.clip_seconds * rate))
    return cfg.replace(**changes) if changes else cfg


def cmd_preprocess(args: argparse.Namespace) -> int:
    _named_as_the_app_would(args.out)
    cfg = _feature_config(args)
    print(
        f"features: {cfg.n_bins} bins x {cfg.n_frames} frames "
        f"({cfg.clip_seconds:.3f} s at {cfg.sample_rate} Hz)",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(prefix="vae-unpacked-") as tmp:
        return _preprocess(args, cfg, _unpacked(Path(args.src), Path(tmp) / "clips"))


def _skipped(name: object, reason: object) -> None:
    """One stderr line per refused file, whatever its name holds: control characters (a
    newline in a file name) are shown escaped, so each refusal stays one line."""
    line = f"skipped {name}: {reason}"
    print("".join(c if c.isprintable() else repr(c)[1:-1] for c in line), file=sys.stderr)


def _unpacked(src: Path, target: Path) -> Path:
    """``src`` itself, or for a zip / tar(.gz) file its audio unpacked safely into ``target``."""

    if not (src.is_file() and archive.is_archive(src.name)):
        return src
    done = archive.extract_archive(src, target)
    for name, reason in done.skipped:
        _skipped(f"{src.name}:{name}", reason)
    print(f"unpacked {len(done.kept)} audio files from {src}", file=sys.stderr)
    return done.target


def _preprocess(args: argparse.Namespace, cfg, src: Path) -> int:
    from vae.dataset import preprocess

    update, close = _bar("preprocess", "file")
    try:
        summary = preprocess(
            src,
            Path(args.out),
            cfg,
            labels=args.labels,
            val_fraction=args.val_fraction,
            seed=args.seed,
            progress=update,
        )
    finally:
        close()
    for file, reason in summary.refused:
        _skipped(file, reason)
    labels = ", ".join(f"{k}: {v}" for k, v in summary.per_label.items()) or "none"
    print(
        f"kept {summary.kept} clips, refused {len(summary.refused)} files "
        f"in {summary.seconds:.1f} s -> {summary.out}\nclips per label: {labels}"
    )
    return 0


TRAIN_OPTIONS = {  # CLI option -> TrainConfig field; None defaults mean "not given"
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "beta": "beta",
    "beta_warmup_epochs": "beta_warmup_epochs",
    "free_bits": "free_bits",
    "seed": "seed",
    "device": "device",
    "threads": "threads",
    "precision": "precision",
    "likelihood": "likelihood",
    "judge_every": "judge_every",
    "judge": "judge",
    "judge_patience": "judge_patience",
    "stop_when_stale": "stop_when_stale",
}


def _train_config(args: argparse.Namespace):
    """Options given on the command line over the stored config (resume) or the defaults."""
    from vae.checkpoints import has_checkpoint, read_config
    from vae.train_config import TrainConfig

    base = TrainConfig()
    if args.resume and has_checkpoint(args.out):
        base = TrainConfig.from_dict(read_config(args.out)["train_config"])
    given = {f: getattr(args, o) for o, f in TRAIN_OPTIONS.items() if getattr(args, o) is not None}
    if args.judge is not None:  # resumed from any directory, the run finds it again
        given["judge"] = str(Path(args.judge).absolute())
    cfg = dataclasses.replace(base, **given)
    if args.judge is not None and not cfg.judge_every:
        raise CliError("--judge DIR scores the model only with --judge-every N (epochs)")
    return cfg


def _judge_line(event: dict) -> str:
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


def _named_as_the_app_would(out: str) -> None:
    """Refuse an --out folder whose name the app refuses, so both faces make the same ones."""
    from vae.workspace import folder_name

    try:
        folder_name(Path(out).name)
    except ValueError as err:
        raise CliError(f"--out {out}: {err}") from None


def cmd_train(args: argparse.Namespace) -> int:
    from vae.distributed import from_env
    from vae.train import train

    _named_as_the_app_would(args.out)
    cfg = _train_config(args)
    overrides: dict = {"conditional": args.conditional}
    if args.latent_dim is not None:
        overrides["latent_dim"] = args.latent_dim
    if args.size is not None:
        overrides["size"] = args.size
    if args.channels:
        overrides["channels"] = tuple(int(c) for c in args.channels.split(","))
    for key in ("decoder", "res_blocks"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    tqdm = _tqdm()
    bars: dict = {"epoch": None, "bar": None}  # one bar per epoch, labelled from its start

    def bar_for(epoch: int, batches: int):
        if bars["epoch"] != epoch:
            if bars["bar"] is not None:
                bars["bar"].close()
            bars["epoch"], bars["bar"] = (
                epoch,
                tqdm(
                    total=batches,
                    desc=f"epoch {epoch}/{cfg.epochs}",
                    unit="batch",
                    file=sys.stderr,
                    dynamic_ncols=True,
                    delay=BAR_DELAY,
                    leave=False,  # the epoch's summary line stays instead
                ),
            )
        return bars["bar"]

    def say(line: str) -> None:
        tqdm.write(line)  # stdout, as every result line (scripts read it); bars are on stderr

    def progress(event: dict) -> None:
        kind = event.get("event")
        if kind == "batch":
            bar = bar_for(event["epoch"], event["batches"])
            bar.update(event["batch"] - bar.n)
        elif kind == "epoch":
            if bars["bar"] is not None:  # the epoch is over: its summary replaces its bar
                bars["bar"].close()
                bars["bar"] = None
            val = event.get("val_loss")
            say(
                f"epoch {event['epoch']}/{cfg.epochs}: loss {event['train_loss']:.3f} "
                f"(recon {event['train_recon']:.3f}, kl {event['train_kl']:.3f}) "
                f"val {'-' if val is None else f'{val:.3f}'} in {event['seconds']:.1f} s"
            )
        elif kind == "judge":
            say(_judge_line(event))
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
        if bars["bar"] is not None:
            bars["bar"].close()  # cleared: what follows starts on a line of its own
    if from_env().is_main:  # under torchrun, rank 0 speaks for every rank
        print(f"checkpoint at epoch {result.epoch} -> {args.out}")
    return 0


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


DISTRIBUTION_SETS = (
    ("real", "real"),
    ("phase_copies", "phase copies"),
    ("reconstructed", "reconstructed"),
    ("samples", "samples"),
)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from vae.dataset import load_dataset
    from vae.evaluate import (
        evaluate_reconstruction,
        evaluate_with_judge,
        interpolation_monotonicity,
    )
    from vae.judge import Judge

    synth, ds = _synth(args.checkpoint, args.phase), load_dataset(args.data)
    judge_dir = args.judge or (Path(args.checkpoint) / "judge")
    judge = Judge.load(judge_dir) if args.judge or (judge_dir / "judge.json").is_file() else None
    update, close = _bar("evaluate")
    try:
        report = evaluate_reconstruction(synth, ds, args.split, progress=update)
        if judge is not None:
            update(0, 1)
            report["judge"] = evaluate_with_judge(
                synth, ds, judge, args.split, args.samples_per_label, progress=update
            )
            if args.pairs:
                report["judge"]["interpolation"] = interpolation_monotonicity(
                    synth, ds, judge, pairs=args.pairs, split=args.split
                )
            report["judge"]["path"] = str(judge_dir)
            report["judge"]["judge_val_accuracy"] = judge.info.get("val_accuracy")
    finally:
        close()
    report["checkpoint"] = str(args.checkpoint)
    report["epoch"] = synth.checkpoint.epoch
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    m, g = report["model"], report["griffin_lim_only"]
    print(f"{report['clips']} clips of split {report['split']!r} (epoch {report['epoch']})")
    phase = "vocoder" if report.get("phase") == "vocoder" else "Griffin-Lim"
    print(f"  model + {phase}: LSD {m['lsd_db']['median']:.2f} dB, SC {m['sc']['median']:.3f}")
    print(f"  Griffin-Lim alone:   LSD {g['lsd_db']['median']:.2f} dB, SC {g['sc']['median']:.3f}")
    if judge is not None:
        j = report["judge"]
        print(
            f"  judge on real clips {j['real']['accuracy']:.1%}, on reconstructions through "
            f"audio {j['reconstructed']['accuracy']:.1%}"
        )
        if j["samples"]:
            s = j["samples"]
            worst = min(s["per_label"].items(), key=lambda kv: kv[1])
            print(
                f"  judge on prior samples {s['accuracy']:.1%} (worst {worst[0]}: "
                f"{worst[1]:.0%}), diversity {s['diversity']['mean']:.2f}"
            )
        for line in _distribution_lines(j.get("distribution")):
            print(f"  {line}")
    return 0


def _distribution_lines(dist: dict | None) -> list[str]:
    """The evaluate report's distribution section as text lines (none without it)."""
    if not dist:
        return []
    lines = [
        f"as a whole, against {dist['reference']['clips']} real training clips "
        "(Fréchet distance of the judge's embeddings, lower is closer; inception score):"
    ]
    for name, shown in DISTRIBUTION_SETS:
        if dist.get(name):
            d = dist[name]
            lines.append(
                f"  {shown:<13} FD {d['frechet']:8.2f}  IS {d['inception_score']:5.2f}"
                f"  ({d['clips']} clips)"
            )
    ratios = [
        (key, dist.get(key))
        for key in ("reconstructed_vs_phase", "samples_vs_phase", "samples_is_vs_real")
    ]
    shown = ", ".join(f"{key} {value:.2f}" for key, value in ratios if value is not None)
    return lines + ([f"  {shown}"] if shown else [])


def cmd_judge(args: argparse.Namespace) -> int:
    from vae.dataset import load_dataset
    from vae.judge_training import JudgeTraining, train_judge

    ds = load_dataset(args.data)
    update, close = _bar("judge", "epoch")
    try:
        report = train_judge(
            ds,
            args.out,
            JudgeTraining(epochs=args.epochs, seed=args.seed),
            progress=lambda e: update(e["epoch"], e["epochs"]),
        )
    finally:
        close()
    print(
        f"judge saved to {args.out}: {report['val_accuracy']:.1%} on the validation clips, "
        f"{report['val_accuracy_phase_copies']:.1%} on their Griffin-Lim copies "
        f"({report['train_accuracy']:.1%} on training) in {report['seconds']:.0f} s"
    )
    return 0


def cmd_vocoder(args: argparse.Namespace) -> int:
    import torch

    tqdm = _tqdm()

    from vae.checkpoints import check_compatible, load_checkpoint
    from vae.dataset import load_dataset
    from vae.vocoder import VocoderConfig, vocoder_dir
    from vae.vocoder_train import VocoderTraining, train_vocoder

    if not args.checkpoint and not args.out:
        raise CliError("pass --checkpoint CKPT (saves into CKPT/vocoder) or --out DIR")
    ds = load_dataset(args.data)
    if args.checkpoint:
        check_compatible(load_checkpoint(args.checkpoint), ds.config, f"dataset {args.data}")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else vocoder_dir(args.checkpoint)
    config = VocoderConfig(
        ds.config,
        width=args.width,
        layers=args.layers,
        magnitude=args.magnitude,
        refine_iters=args.refine,
    )
    training = VocoderTraining(seconds=args.seconds, seed=args.seed, val_clips=args.val_clips)
    bar = tqdm(total=round(args.seconds), unit="s", file=sys.stderr, dynamic_ncols=True)

    def progress(event: dict) -> None:
        if event["event"] == "step":
            bar.set_postfix(step=event["step"], loss=f"{event['loss']:.3f}", refresh=False)
            bar.update(min(round(event["seconds"]), bar.total) - bar.n)
        else:
            bar.write(f"measuring copies of up to {args.val_clips} validation clips")

    try:
        report = train_vocoder(ds, out, config, training, progress)
    finally:
        bar.close()
    print(f"vocoder saved to {out}: {report['steps']} steps in {report['seconds']:.0f} s")
    val = report.get("val")
    if val:
        print(f"copies of {val['clips']} {val['split']} clips:  LSD dB  SC      ms/clip")
        names = {"griffin_lim": f"Griffin-Lim x{ds.config.griffin_lim_iters}"}
        names["vocoder"] = "vocoder" + (f" + {args.refine} GL" if args.refine else "")
        for key, fig in val.items():
            if isinstance(fig, dict) and "lsd_db" in fig:
                name = names.get(key, key.replace("hybrid_", "vocoder + ") + " GL")
                print(
                    f"  {name:<24} {fig['lsd_db']['median']:6.3f}  {fig['sc']['median']:.4f}"
                    f"  {fig['ms_per_clip']:6.1f}"
                )
        if val["vocoder"]["lsd_db"]["median"] > val["griffin_lim"]["lsd_db"]["median"]:
            print(
                f"note: Griffin-Lim beats this vocoder here; synthesis uses {out} whenever it "
                "exists (--phase auto): delete it or pass --phase griffin-lim"
            )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from vae.export import export_checkpoint

    result = export_checkpoint(args.checkpoint, Path(args.out), args.format)
    for name, size in result.sizes().items():
        shown = f"{size / 1e6:.2f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"
        print(f"  {name:<20} {shown:>10}")
    for role, error in result.parity.items():
        print(f"{role}: ONNX Runtime matches PyTorch within {error:.1e}")
    print(f"wrote the {args.format} export of {args.checkpoint} to {result.path}")
    return 0


def cmd_demo_data(args: argparse.Namespace) -> int:
    from vae.sources import make_demo_set

    update, close = _bar("demo-data")
    try:
        out = make_demo_set(Path(args.out), args.per_class, seed=args.seed, progress=update)
    finally:
        close()
    print(f"wrote the synthetic demo set to {out}")
    return 0


def cmd_fetch_fsdd(args: argparse.Namespace) -> int:
    tqdm = _tqdm()

    from vae.fsdd import fetch_fsdd

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


def _phase_option(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--phase",
        default="auto",
        choices=["auto", "vocoder", "griffin-lim"],
        help="features to sound: auto uses the checkpoint's vocoder when it has one",
    )


# preprocess's feature overrides: option, type, FeatureConfig attribute, what it does.
FEATURE_OVERRIDES = [
    ("--sample-rate", int, "sample_rate", "resample every clip to this rate (Hz)"),
    ("--clip-seconds", float, "clip_seconds", "length of one clip or segment (s)"),
    ("--n-fft", int, "n_fft", "FFT size"),
    ("--hop", int, "hop_length", "samples between frames"),
    ("--top-db", float, "top_db", "dynamic range kept below full scale (dB)"),
    ("--n-mels", int, "n_mels", "mel bands (0: linear frequency bins)"),
    ("--trim-db", float, "trim_db", "trim edges this far below the peak (dB; none: keep all)"),
]


def _preset_values(field: str) -> str:
    """What each preset sets ``field`` to, for --help: "fsdd 8000, music 22050, seed 22050"."""

    def shown(value: object) -> str:
        if value is None:
            return "none"
        return f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)

    return ", ".join(f"{name} {shown(getattr(PRESETS[name], field))}" for name in sorted(PRESETS))


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="python -m vae", description=DESCRIPTION, formatter_class=fmt)
    p.add_argument("--version", action="version", version=f"sound-vae-studio {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("preprocess", help="turn a folder of clips into a spectrogram dataset")
    s.add_argument(
        "src",
        help="folder of audio files (searched recursively), or a zip / tar.gz (unpacked "
        f"safely: {archive.Limits().describe()})",
    )
    s.add_argument("--out", required=True, help="dataset folder to write (replaced atomically)")
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
    s.add_argument("--val-fraction", type=float, default=0.1, help="share held out (per label)")
    s.add_argument("--seed", type=int, default=0, help="seed of the train/validation split")
    g = s.add_argument_group("feature overrides (default: the preset's values)")
    for option, kind, field, text in FEATURE_OVERRIDES:
        g.add_argument(option, type=kind, help=f"{text} ({_preset_values(field)})")
    s.set_defaults(func=cmd_preprocess)

    s = sub.add_parser("train", help="train a VAE on a preprocessed dataset")
    s.add_argument("data", help="dataset folder written by preprocess")
    s.add_argument("--out", required=True, help="checkpoint folder (saved after every epoch)")
    s.add_argument("--epochs", type=int, help="total epochs, resume counting on (default 30)")
    s.add_argument("--latent-dim", type=int, help="size of the latent code (default 16)")
    s.add_argument("--size", choices=list(MODEL_SIZES), help="model size (default small)")
    s.add_argument("--channels", help="encoder channels per stage, e.g. 16,32,64,128")
    s.add_argument(
        "--decoder", choices=list(DECODER_KINDS), help="decoder upsampling (default transpose)"
    )
    s.add_argument("--res-blocks", type=int, help="residual blocks per decoder stage (default 0)")
    s.add_argument(
        "--likelihood",
        choices=["gaussian", "laplace"],
        help="reconstruction term: squared (gaussian, default) or absolute (laplace) errors",
    )
    s.add_argument("--beta", type=float, help="final weight of the KL term (default 1.0)")
    s.add_argument("--beta-warmup-epochs", type=float, help="epochs to ramp beta up (default 5)")
    s.add_argument("--free-bits", type=float, help="KL floor per latent dim, nats (default 0)")
    s.add_argument("--batch-size", type=int, help="clips per step (default 64)")
    s.add_argument("--lr", type=float, help="learning rate (default 0.001)")
    s.add_argument("--conditional", action="store_true", help="condition on the clip labels")
    s.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    s.add_argument("--seed", type=int, help="seed of initialisation and shuffling (default 0)")
    s.add_argument("--device", choices=["auto", "cpu", "cuda"], help="auto: a GPU if any")
    s.add_argument("--threads", type=int, help="CPU threads per process (default: all cores)")
    s.add_argument("--precision", choices=["fp32", "bf16"], help="bf16: on a GPU (default fp32)")
    g = s.add_argument_group("the judge in the loop (scores samples; keeps the best in CKPT/best)")
    g.add_argument("--judge-every", type=int, help="score every N epochs and the last (0: off)")
    g.add_argument("--judge", help="judge folder, made by `python -m vae judge DATA --out DIR`")
    g.add_argument("--judge-patience", type=int, help="scorings without gain before the note (3)")
    g.add_argument(
        "--stop-when-stale",
        action="store_true",
        default=None,
        help="stop training once the judge's score has not improved for the patience",
    )
    s.set_defaults(func=cmd_train)

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

    s = sub.add_parser(
        "evaluate",
        help="reconstruction figures on a dataset split; with a judge, what it hears and "
        "how far each set is from the real clips (Fréchet distance, inception score)",
    )
    s.add_argument("checkpoint", help="checkpoint folder")
    s.add_argument("data", help="dataset folder")
    s.add_argument("--split", default="val", choices=["train", "val", "all"], help="which clips")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.add_argument("--judge", help="judge folder (default: CHECKPOINT/judge when it exists)")
    s.add_argument(
        "--samples-per-label",
        type=int,
        default=20,
        help="prior samples per label the judge hears (conditional models)",
    )
    s.add_argument(
        "--pairs",
        type=int,
        default=0,
        help="morph this many random pairs of different labels and report how often "
        "the judge hears A's label fade into B's (needs a judge)",
    )
    _phase_option(s)
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("judge", help="train the judge: a classifier of a dataset's labels")
    s.add_argument("data", help="labelled dataset folder (its train split trains the judge)")
    s.add_argument("--out", required=True, help="judge folder to write")
    s.add_argument("--epochs", type=int, default=12, help="passes over the training clips")
    s.add_argument("--seed", type=int, default=0, help="seed of initialisation and shuffling")
    s.set_defaults(func=cmd_judge)

    s = sub.add_parser(
        "vocoder", help="train a neural phase for a checkpoint (Griffin-Lim stays the fallback)"
    )
    s.add_argument("data", help="dataset folder the checkpoint was trained on")
    s.add_argument("--checkpoint", help="checkpoint folder: the vocoder goes to CKPT/vocoder")
    s.add_argument("--out", help="vocoder folder to write instead")
    s.add_argument("--seconds", type=float, default=300, help="training time budget (s)")
    s.add_argument("--seed", type=int, default=0, help="seed of initialisation and batches")
    s.add_argument("--width", type=int, default=128, help="channels of the network")
    s.add_argument("--layers", type=int, default=4, help="ConvNeXt blocks")
    s.add_argument(
        "--magnitude",
        default="input",
        choices=["input", "predicted"],
        help="input: magnitude from the features, only the phase is learned",
    )
    s.add_argument("--refine", type=int, default=0, help="Griffin-Lim iterations after the vocoder")
    s.add_argument("--val-clips", type=int, default=300, help="validation clips measured")
    s.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    s.set_defaults(func=cmd_vocoder)

    s = sub.add_parser(
        "export", help="write the decoder, encoder (and vocoder) as ONNX files for other runtimes"
    )
    s.add_argument("checkpoint", help="checkpoint folder")
    s.add_argument(
        "--out", required=True, help="export folder to write (an old export is replaced)"
    )
    s.add_argument(
        "--format",
        default="onnx",
        choices=["onnx", "torchscript"],
        help="onnx (checked with ONNX Runtime) or torchscript (.pt, torch.jit.load)",
    )
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("demo-data", help="write the offline synthetic demo set")
    s.add_argument("out", help="folder to write")
    s.add_argument("--per-class", type=int, default=40, help="clips per class")
    s.add_argument("--seed", type=int, default=0, help="seed of the generator")
    s.set_defaults(func=cmd_demo_data)

    s = sub.add_parser("fetch-fsdd", help="download the Free Spoken Digit Dataset recordings")
    s.add_argument("out", help="folder for the {digit}_{speaker}_{i}.wav recordings")
    s.add_argument("--url", help="archive URL (default: the v1.0.9 release; env VAE_FSDD_URL)")
    s.add_argument("--sha256", help="expected SHA-256 of the archive (env VAE_FSDD_SHA256)")
    s.set_defaults(func=cmd_fetch_fsdd)
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
