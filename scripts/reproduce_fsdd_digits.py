"""Rebuild the shipped checkpoint ``checkpoints/fsdd-digits`` from the FSDD recordings, with
this project's own CLI, in one command:

    .venv/bin/python scripts/reproduce_fsdd_digits.py [--src ../shared/datasets/fsdd/recordings]

Steps (each a ``python -m vae`` command, printed as it runs): preprocess with the ``fsdd``
preset, train the judge, train a conditional VAE (stage 1), sharpen its decoder against a
critic (stage 2, the judge keeping its best epoch), evaluate (JSON, with 100 morph pairs),
then write the model card and put the judge inside the checkpoint folder. Without the
recordings on disk, ``fetch-fsdd`` downloads them first. The options exist so a test can run
the whole chain on the synthetic set in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vae.jobs.recipes import SHIPPED  # noqa: E402
from vae.storage import files as storage  # noqa: E402

FSDD = ROOT.parent / "shared/datasets/fsdd/recordings"
# Training settings of the shipped checkpoint, from the one recipe the Train page offers too;
# the model card records them with the figures.
TRAIN = SHIPPED.arguments()
SHARPEN = SHIPPED.sharpen_arguments()
MAX_MB = 25
# What playing the shipped model does not need: the stage-2 state (critic, optimizers: only
# `sharpen --resume` reads it), the judge's copy of the best epoch (adopted before), the
# app's job files.
LEFT_OUT = ("sharpen.pt", ".lock", "job.json", "train.log")


def vae(*args: object) -> str:
    """Run ``python -m vae ARGS`` from the project root; its stdout (errors end the script)."""
    cmd = [sys.executable, "-m", "vae", *map(str, args)]
    print("$", " ".join(cmd[1:]), flush=True)
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(f"`{' '.join(cmd[2:])}` failed with exit code {done.returncode}")
    return done.stdout


def _shown(path: Path) -> str:
    """``path`` relative to the project when it is in it or in ../shared beside it (no
    machine's absolute paths in a shipped file), else as given (a folder elsewhere, say a
    temporary one beside a clone in /tmp, is not the project's)."""
    full = path.resolve()
    near = full.is_relative_to(ROOT) or full.is_relative_to(ROOT.parent / "shared")
    return os.path.relpath(full, ROOT) if near else str(path)


def _record_dataset_path(ckpt: Path, data: Path) -> None:
    """Store the dataset path in the checkpoint's and the judge's config relative to the
    project, as the app (run from the project root) looks it up to play the originals."""
    for file in (ckpt / "config.json", ckpt / "judge" / "judge.json"):
        config = json.loads(file.read_text())
        config["dataset"]["path"] = _shown(data)
        storage.atomic_write_json(file, config)


DISTRIBUTION_SETS = (
    ("real", "real validation clips (the floor)"),
    ("phase_copies", "Griffin-Lim copies of them"),
    ("reconstructed", "reconstructions"),
    ("samples", "prior samples"),
)


def distribution_lines(dist: dict | None) -> list[str]:
    """The model card's table of the distribution section (none in older reports), with each
    set's fine structure beside its Fréchet distance (a dash in reports older than it)."""
    if not dist:
        return []
    lines = [
        "",
        f"## As a whole, against {dist['reference']['clips']} real training clips",
        "Fréchet distance of the judge's embeddings (lower is closer), inception score of its "
        "verdicts (at most the number of labels), and fine structure: the mean step in dB "
        "between neighbouring frequency bins over loud frames, as heard (a smeared spectrum "
        "scores less), and its ratio to the real clips':",
        "",
        "| set | clips | Fréchet distance | inception score | fine structure (dB) | x real |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, name in DISTRIBUTION_SETS:
        if dist.get(key):
            d = dist[key]
            fine = (d.get("fine_structure_db") or {}).get("mean")
            vs_real = d.get("fine_structure_vs_real")
            lines.append(
                f"| {name} | {d['clips']} | {d['frechet']:.2f} | {d['inception_score']:.2f} | "
                + (f"{fine:.2f} | " if fine is not None else "– | ")
                + (f"{vs_real:.2f} |" if vs_real is not None else "– |")
            )
    ratios = (
        ("reconstructions / phase copies, Fréchet", "reconstructed_vs_phase"),
        ("prior samples / phase copies, Fréchet", "samples_vs_phase"),
        ("prior samples / real clips, inception score", "samples_is_vs_real"),
    )
    shown = [f"{name} {dist[key]:.2f}" for name, key in ratios if dist.get(key) is not None]
    return lines + (["", "Ratios: " + "; ".join(shown) + "."] if shown else [])


def model_card(
    out: Path, report: dict, settings: list[str], sharpen: list[str], seconds: dict, src: Path
) -> str:
    j = report.get("judge", {})
    samples, morph = j.get("samples") or {}, j.get("interpolation") or {}
    per_label = samples.get("per_label", {})
    lines = [
        f"# {out.name}: a conditional VAE of spoken digits",
        "",
        "Trained by `scripts/reproduce_fsdd_digits.py` with this project's CLI on the Free "
        "Spoken Digit Dataset (CC BY-SA 4.0; 8 kHz recordings, `{digit}_{speaker}_{i}.wav`), "
        f"read from `{src}`.",
        "",
        "## Settings",
        f"- features: the `fsdd` preset; training: `python -m vae train {' '.join(settings)}`",
        f"- stage 2: `python -m vae sharpen CKPT {' '.join(sharpen)}`"
        if sharpen
        else "- stage 2: none",
        "- time on this machine: "
        + ", ".join(f"{step} {sec:.0f} s" for step, sec in seconds.items()),
        "",
        f"## Figures on the validation split ({report['clips']} clips, epoch {report['epoch']})",
        f"- log-spectral distance {report['model']['lsd_db']['median']:.2f} dB, spectral "
        f"convergence {report['model']['sc']['median']:.3f} (Griffin-Lim alone: "
        f"{report['griffin_lim_only']['lsd_db']['median']:.2f} dB, "
        f"{report['griffin_lim_only']['sc']['median']:.3f})",
    ]
    if j:
        lines += [
            f"- judge (val accuracy {j.get('judge_val_accuracy', float('nan')):.1%}) on real "
            f"clips {j['real']['accuracy']:.1%}, on reconstructions through audio "
            f"{j['reconstructed']['accuracy']:.1%}",
        ]
    if per_label:
        worst = min(per_label.items(), key=lambda kv: kv[1])
        lines.append(
            f"- judge on prior samples (drawn from the learned prior, `prior.npz`: a Gaussian "
            f"mixture per digit fitted to the training clips' codes) {samples['accuracy']:.1%} "
            f"(worst label {worst[0]}: "
            f"{worst[1]:.0%}); diversity {samples['diversity']['mean']:.2f}"
        )
    if morph:
        lines.append(
            f"- morphs heard moving from A's digit to B's: {morph['monotonic_fraction']:.0%} "
            f"of {morph['pairs']} random pairs"
        )
    lines += distribution_lines(j.get("distribution"))
    lines += [
        "",
        "## Commands that made these figures (from the project root; the script runs them)",
        "```",
        *COMMANDS,
        "```",
        "",
        "The full report is `evaluation.json`; the judge is in `judge/`; `sharpen.json` records "
        "stage 2 (the epoch shipped is the judge's best of it). Why these settings: the "
        "README's section on the shipped model (the stage-2 study, the decoder study, the "
        "learned prior, the beta experiments and their figures, and the bars not met).",
        "",
    ]
    return "\n".join(lines)


COMMANDS = (
    "python -m vae preprocess ../shared/datasets/fsdd/recordings --out data/fsdd --preset fsdd",
    "python -m vae judge data/fsdd --out CKPT/judge --epochs 12",
    f"python -m vae train data/fsdd --out CKPT {TRAIN}",
    f"python -m vae sharpen CKPT --data data/fsdd --judge CKPT/judge {SHARPEN}",
    "python -m vae evaluate CKPT data/fsdd --judge CKPT/judge --json --samples-per-label 200 "
    "--pairs 100 > CKPT/evaluation.json",
)


def adopt_best(ckpt: Path) -> None:
    """Ship the epoch the judge found best (its ``best/`` copy, when it is not the last
    epoch: stage 2 may overshoot), then drop ``best/``; metrics.jsonl keeps every line."""
    best = ckpt / "best"
    if not best.is_dir():
        return
    last, kept = json.loads((ckpt / "config.json").read_text()), None
    if (best / "config.json").is_file():
        kept = json.loads((best / "config.json").read_text())
    if kept is not None and kept["epoch"] != last["epoch"]:
        print(f"shipping epoch {kept['epoch']}, the judge's best (the last was {last['epoch']})")
        for file in best.iterdir():
            shutil.copy2(file, ckpt / file.name)
        record = json.loads((ckpt / "sharpen.json").read_text())
        record["shipped_epoch"] = kept["epoch"]  # sharpen.json's stage_epoch is the last one
        storage.atomic_write_json(ckpt / "sharpen.json", record)
    shutil.rmtree(best)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=FSDD, help="FSDD recordings folder")
    parser.add_argument("--out", type=Path, default=ROOT / "checkpoints" / "fsdd-digits")
    parser.add_argument(
        "--preprocess-args",
        default="--preset fsdd",
        help="preprocess options, one string (default: --preset fsdd)",
    )
    parser.add_argument(
        "--train-args",
        default=TRAIN,
        help="train options, one string (default: the shipped settings)",
    )
    parser.add_argument(
        "--sharpen-args",
        default=SHARPEN,
        help="stage-2 options, one string (default: the shipped settings; '' skips stage 2)",
    )
    parser.add_argument(
        "--keep-stage1",
        type=Path,
        help="also keep a copy of the checkpoint before stage 2 here (for a study)",
    )
    parser.add_argument("--judge-epochs", type=int, default=12)
    parser.add_argument(
        "--data",
        type=Path,
        default=ROOT / "data" / "fsdd",
        help="where the preprocessed dataset goes (default data/fsdd: the app then plays "
        "the originals)",
    )
    parser.add_argument("--samples-per-label", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=100)
    args = parser.parse_args()
    args.preprocess, args.train = shlex.split(args.preprocess_args), shlex.split(args.train_args)
    args.sharpen = shlex.split(args.sharpen_args)
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = args.src
        if not src.is_dir():
            vae("fetch-fsdd", Path(tmp) / "recordings")
            src = Path(tmp) / "recordings"
        data, ckpt, judge = args.data, Path(tmp) / "ckpt", Path(tmp) / "judge"
        steps = [
            ("preprocess", ["preprocess", src, "--out", data, "--overwrite", *args.preprocess]),
            ("judge", ["judge", data, "--out", judge, "--epochs", args.judge_epochs]),
            ("train", ["train", data, "--out", ckpt, *args.train]),
        ]
        if args.sharpen:
            sharpen = ["sharpen", ckpt, "--data", data, "--judge", judge, *args.sharpen]
            steps.append(("sharpen", sharpen))
        for step, cmd in steps:
            if step == "sharpen" and args.keep_stage1:
                shutil.rmtree(args.keep_stage1, ignore_errors=True)
                shutil.copytree(ckpt, args.keep_stage1)
            started = time.perf_counter()
            vae(*cmd)
            seconds[step] = time.perf_counter() - started
        if args.sharpen:
            adopt_best(ckpt)
        started = time.perf_counter()
        report = json.loads(
            vae(
                "evaluate",
                ckpt,
                data,
                "--judge",
                judge,
                "--json",
                "--samples-per-label",
                args.samples_per_label,
                "--pairs",
                args.pairs,
            )
        )
        seconds["evaluate"] = time.perf_counter() - started
        shutil.copytree(judge, ckpt / "judge")
        _record_dataset_path(ckpt, data)
        if (ckpt / "sharpen.json").is_file():  # the judge it was given is the one inside now
            record = json.loads((ckpt / "sharpen.json").read_text())
            record["config"]["judge"] = _shown(args.out / "judge")
            storage.atomic_write_json(ckpt / "sharpen.json", record)
        report["checkpoint"] = _shown(args.out)  # where it ships, not the temp build folder
        if "judge" in report:
            report["judge"]["path"] = _shown(args.out / "judge")
        (ckpt / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
        card = model_card(args.out, report, args.train, args.sharpen, seconds, _shown(src))
        (ckpt / "MODEL_CARD.md").write_text(card)
        for name in LEFT_OUT:
            (ckpt / name).unlink(missing_ok=True)
        size = sum(p.stat().st_size for p in ckpt.rglob("*") if p.is_file()) / 2**20
        if size > MAX_MB:
            raise SystemExit(f"{ckpt}: {size:.1f} MB, over the {MAX_MB} MB a shipped model may use")
        staged = storage.temp_beside(args.out, "tmp")  # same disk as the destination
        shutil.copytree(ckpt, staged)
        storage.swap_into_place(staged, args.out)
    print(f"wrote {args.out} ({size:.1f} MB) in {sum(seconds.values()) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
