"""The commands that measure or package a model: ``evaluate`` (realism first, then
reconstruction figures and the judge's view), ``judge`` (train the judge), ``vocoder`` (train
a neural phase) and ``export`` (ONNX / TorchScript)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vae.cli import SEED, CliError, add_phase_option, number, progress_bar, tqdm_class
from vae.cli.synthesis import load_synth
from vae.storage import limits

MAX_VOCODER_SECONDS = 7 * 24 * 3600.0  # a week: past it, a budget is a typo

REALISM_NAMES = {
    "real": "real clips",
    "phase_copies": "phase copies",
    "reconstructed": "reconstructions",
    "samples": "prior samples",
}


def cmd_evaluate(args: argparse.Namespace) -> int:
    from vae.data.dataset import load_dataset
    from vae.evaluation.evaluate import (
        evaluate_reconstruction,
        evaluate_with_judge,
        interpolation_monotonicity,
        realism_rows,
    )
    from vae.evaluation.judge import CONFIG_FILE as JUDGE_FILE
    from vae.evaluation.judge import Judge

    synth, ds = load_synth(args.checkpoint, args.phase), load_dataset(args.data)
    judge_dir = args.judge or (Path(args.checkpoint) / "judge")
    judge = Judge.load(judge_dir) if args.judge or (judge_dir / JUDGE_FILE).is_file() else None
    update, close = progress_bar("evaluate")
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
    for line in _realism_lines(realism_rows(report), report.get("judge")):
        print(line)
    print("accuracy: how close each reconstruction is to its clip; what the judge hears")
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
    return 0


def _figure(value: float | None, spec: str, width: int) -> str:
    """``value`` formatted, or a dash where it was not measured, right-aligned."""
    return f"{'-' if value is None else format(value, spec):>{width}}"


def _realism_lines(rows: list[dict], judge: dict | None) -> list[str]:
    """The table ``evaluate`` leads with (``vae.evaluation.evaluate.realism_rows``), as text
    lines."""
    if not rows:
        return []
    dist = (judge or {}).get("distribution") or {}
    fd = (
        f"Fréchet distance of the judge's embeddings to {dist['reference']['clips']} real "
        "training clips, lower is closer; IS: inception score"
        if dist.get("reference")
        else "Fréchet distance and IS (inception score) need a judge: --judge DIR"
    )
    lines = [
        "realism: how close each set sounds to real clips",
        f"  FD: {fd}",
        "  fine dB: mean step between neighbouring bins over loud frames (lower when smeared)",
        "  x phase: FD over the phase copies'; x real: fine structure over the real clips'",
        f"  {'set':<16} {'clips':>5} {'FD':>8} {'x phase':>8} {'fine dB':>8} {'x real':>7}"
        f" {'IS':>6}",
    ]
    for row in rows:
        lines.append(
            f"  {REALISM_NAMES[row['set']]:<16} {row['clips']:>5}"
            f" {_figure(row['frechet'], '.2f', 8)} {_figure(row['frechet_vs_phase'], '.2f', 8)}"
            f" {_figure(row['fine_structure_db'], '.2f', 8)}"
            f" {_figure(row['fine_structure_vs_real'], '.2f', 7)}"
            f" {_figure(row['inception_score'], '.2f', 6)}"
        )
    if dist.get("samples_is_vs_real") is not None:
        lines.append(
            f"  IS of the prior samples over the real clips': {dist['samples_is_vs_real']:.2f}"
        )
    return lines


def cmd_judge(args: argparse.Namespace) -> int:
    from vae.data.dataset import load_dataset
    from vae.evaluation.judge import check_judge_out
    from vae.evaluation.judge_training import JudgeTraining, train_judge

    check_judge_out(args.out)
    ds = load_dataset(args.data)
    update, close = progress_bar("judge", "epoch")
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

    tqdm = tqdm_class()

    from vae.data.dataset import load_dataset
    from vae.model.checkpoints import check_compatible, load_checkpoint
    from vae.vocoder.network import VocoderConfig, check_vocoder_out, vocoder_dir
    from vae.vocoder.training import VocoderTraining, train_vocoder

    if not args.checkpoint and not args.out:
        raise CliError("pass --checkpoint CKPT (saves into CKPT/vocoder) or --out DIR")
    out = Path(args.out) if args.out else vocoder_dir(args.checkpoint)
    check_vocoder_out(out)  # before anything is loaded or trained
    ds = load_dataset(args.data)
    if args.checkpoint:
        check_compatible(load_checkpoint(args.checkpoint), ds.config, f"dataset {args.data}")
    if args.threads:
        torch.set_num_threads(args.threads)
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
    print(f"note: {_verdict_note(report)}")
    return 0


def _verdict_note(report: dict) -> str:
    """What ``--phase auto`` will do with a vocoder just trained, and why, in one line."""
    from vae.vocoder.network import describe_verdict

    if report.get("verdict", {}).get("won") is True:
        return f"{describe_verdict(report)}; --phase auto uses it"
    return (
        f"{describe_verdict(report)}; --phase auto keeps Griffin-Lim "
        "(--phase vocoder forces the vocoder)"
    )


def cmd_export(args: argparse.Namespace) -> int:
    from vae.export.exporter import export_checkpoint

    result = export_checkpoint(args.checkpoint, Path(args.out), args.format)
    for name, size in result.sizes().items():
        shown = f"{size / 1e6:.2f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"
        print(f"  {name:<20} {shown:>10}")
    for role, error in result.parity.items():
        print(f"{role}: ONNX Runtime matches PyTorch within {error:.1e}")
    print(f"wrote the {args.format} export of {args.checkpoint} to {result.path}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``evaluate``, ``judge``, ``vocoder`` and ``export`` commands."""
    s = sub.add_parser(
        "evaluate",
        help="how real each set of clips sounds (fine structure; with a judge, Fréchet "
        "distance and inception score), then reconstruction figures and what the judge hears",
    )
    s.add_argument("checkpoint", help="checkpoint folder")
    s.add_argument("data", help="dataset folder")
    s.add_argument("--split", default="val", choices=["train", "val", "all"], help="which clips")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.add_argument("--judge", help="judge folder (default: CHECKPOINT/judge when it exists)")
    s.add_argument(
        "--samples-per-label",
        type=number(int, 1, 10_000),
        default=20,
        help="prior samples per label the judge hears (conditional models), 1 to 10,000",
    )
    s.add_argument(
        "--pairs",
        type=number(int, 0, 10_000),
        default=0,
        help="morph this many random pairs of different labels and report how often "
        "the judge hears A's label fade into B's (needs a judge), 0 to 10,000",
    )
    add_phase_option(s)
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("judge", help="train the judge: a classifier of a dataset's labels")
    s.add_argument("data", help="labelled dataset folder (its train split trains the judge)")
    s.add_argument("--out", required=True, help="judge folder to write")
    s.add_argument(
        "--epochs",
        type=number(int, 1, 10_000),
        default=12,
        help="passes over the training clips, 1 to 10,000",
    )
    s.add_argument("--seed", type=SEED, default=0, help="seed of initialisation and shuffling")
    s.set_defaults(func=cmd_judge)

    s = sub.add_parser(
        "vocoder", help="train a neural phase for a checkpoint (Griffin-Lim stays the fallback)"
    )
    s.add_argument("data", help="dataset folder the checkpoint was trained on")
    s.add_argument("--checkpoint", help="checkpoint folder: the vocoder goes to CKPT/vocoder")
    s.add_argument(
        "--out", help="vocoder folder to write instead: new, empty, or a vocoder (replaced)"
    )
    s.add_argument(
        "--seconds",
        type=number(float, 0.1, MAX_VOCODER_SECONDS),
        default=300,
        help="training time budget (s), 0.1 to 604,800 (a week)",
    )
    s.add_argument("--seed", type=SEED, default=0, help="seed of initialisation and batches")
    s.add_argument(
        "--width",
        type=number(int, 1, limits.MAX_CHANNELS),
        default=128,
        help=f"channels of the network, 1 to {limits.MAX_CHANNELS:,}",
    )
    s.add_argument("--layers", type=number(int, 0, 64), default=4, help="ConvNeXt blocks, 0 to 64")
    s.add_argument(
        "--magnitude",
        default="input",
        choices=["input", "predicted"],
        help="input: magnitude from the features, only the phase is learned",
    )
    s.add_argument(
        "--refine",
        type=number(int, 0, limits.MAX_GRIFFIN_LIM_ITERS),
        default=0,
        help=f"Griffin-Lim iterations after the vocoder, 0 to {limits.MAX_GRIFFIN_LIM_ITERS:,}",
    )
    s.add_argument(
        "--val-clips",
        type=number(int, 0, limits.MAX_CLIPS),
        default=300,
        help=f"validation clips measured, 0 to {limits.MAX_CLIPS:,}",
    )
    s.add_argument(
        "--threads", type=number(int, 1, 1024), help="torch threads, 1 to 1,024 (default: all)"
    )
    s.set_defaults(func=cmd_vocoder)

    s = sub.add_parser(
        "export", help="write the decoder, encoder (and vocoder) as ONNX files for other runtimes"
    )
    s.add_argument("checkpoint", help="checkpoint folder")
    s.add_argument(
        "--out",
        required=True,
        help="export folder to write: new, empty, or an export (its files are replaced, others "
        "kept)",
    )
    s.add_argument(
        "--format",
        default="onnx",
        choices=["onnx", "torchscript"],
        help="onnx (checked with ONNX Runtime) or torchscript (.pt, torch.jit.load)",
    )
    s.set_defaults(func=cmd_export)
