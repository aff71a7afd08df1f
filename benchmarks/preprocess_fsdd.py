"""Preprocess FSDD side by side with the notebook's pipeline: clips/s, the ratio, peak memory.

Run: ``.venv/bin/python benchmarks/preprocess_fsdd.py --copies 10 --runs 2`` (issue 26's
acceptance: 30,000 clips, >= 10x the notebook, peak tree RSS < 2 GB; ~4 minutes).
``--copies 10`` makes one corpus of 10 copies of the recordings (symlinks in 10
sub-folders: 30,000 clips; the source is only read). Each run launches, in turn, the
notebook's pipeline (``notebook_pipeline.py``, librosa, one process: ``pip install -r
benchmarks/requirements.txt``) and ours (``dataset.preprocess`` at the ``seed`` preset, its
worker processes forked), each as a whole process timed from launch to exit, start-up
included, while /proc is sampled every 50 ms for the process tree's memory (main + workers).
Prints each run (wall and CPU seconds of the process tree), the medians and their ratio, and
where our workers spent their time (read, decode, resample, stft, write). ``--cli`` times
``python -m vae preprocess`` as well, which imports every command's modules (torch among
them) before it starts.
``--no-notebook`` times ours alone (no librosa needed).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

FSDD = ROOT.parent / "shared/datasets/fsdd/recordings"
STAGES = ("read", "decode", "resample", "stft", "write")


def corpus(src: Path, copies: int, root: Path) -> Path:
    """``src`` itself, or a folder of ``copies`` sub-folders of symlinks to its files."""
    if copies <= 1:
        return src
    for k in range(copies):
        folder = root / f"copy{k}"
        folder.mkdir(parents=True)
        for f in src.iterdir():
            (folder / f.name).symlink_to(f.resolve())
    return root


def ours_once(src: Path, out: Path, preset: str) -> int:
    """The measured process for ours: preprocess, then one JSON line of what it did."""
    from vae.audio import features
    from vae.data import dataset

    summary = dataset.preprocess(src, out, features.get_preset(preset))
    print(
        json.dumps(
            {
                "kept": summary.kept,
                "refused": len(summary.refused),
                "seconds": summary.seconds,
                "stages": summary.stages,
                "torch_loaded": "torch" in sys.modules,
            }
        )
    )
    return 0


def _size_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def measure(name: str, cmd: list[str], out: Path, log: Path) -> dict:
    """Run ``cmd`` as one measured process; its figures, its output folder removed."""
    from big_corpus import run_measured  # the /proc sampler (not imported by the measured runs)

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, peaks, code = run_measured(cmd, log)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the process and its workers
    if code != 0:
        raise SystemExit(f"{name} failed (exit {code}); see {log}:\n{log.read_text()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    figures = {"name": name, "wall": wall, "cpu": cpu, "peaks": peaks, "mib": _size_mib(out)}
    figures["log"] = log
    shutil.rmtree(out, ignore_errors=True)  # untimed
    return figures


def _mib(kib: int) -> str:
    return f"{kib / 1024:,.0f} MiB"


def show(run: int, f: dict, clips: int) -> None:
    peaks = f["peaks"]  # big_corpus.Peaks
    print(
        f"run {run} {f['name']:>9}: {clips} clips in {f['wall']:6.2f} s = "
        f"{clips / f['wall']:7,.0f} clips/s, CPU {f['cpu']:.1f} s; peak tree RSS "
        f"{_mib(peaks.tree_rss)} (main "
        f"{_mib(peaks.main_rss)}, largest worker {_mib(peaks.worker_rss)}, tree PSS "
        f"{_mib(peaks.tree_pss)}, {peaks.most_processes} processes); wrote {f['mib']:,.0f} MiB",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=FSDD)
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--runs", type=int, default=2, help="runs of each pipeline")
    parser.add_argument("--copies", type=int, default=1, help="copies of the source in one run")
    parser.add_argument("--no-notebook", action="store_true", help="time ours alone")
    parser.add_argument("--cli", action="store_true", help="time `python -m vae preprocess` too")
    parser.add_argument(
        "--once", nargs=2, type=Path, metavar=("SRC", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.once:
        return ours_once(*args.once, args.preset)
    if not args.src.is_dir():
        print(f"{args.src}: FSDD recordings not found; pass --src", file=sys.stderr)
        return 1
    notebook = not args.no_notebook
    if notebook:
        try:
            import librosa  # noqa: F401
        except ImportError:
            print("librosa is missing: pip install -r benchmarks/requirements.txt", file=sys.stderr)
            return 1
    if notebook and args.preset != "seed":
        print("the notebook's pipeline is the seed preset's setting: use --preset seed")
        return 1
    py = sys.executable
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="preprocess-bench-") as tmp:
        src = corpus(args.src, args.copies, Path(tmp) / "corpus")
        clips = sum(1 for _ in src.rglob("*.wav"))
        print(f"corpus: {clips} clips ({args.copies} x {args.src}), preset {args.preset}")
        for run in range(1, args.runs + 1):  # alternated, so drifting load hits both alike
            jobs = []
            if notebook:
                out = Path(tmp) / "notebook"
                script = str(ROOT / "benchmarks/notebook_pipeline.py")
                jobs.append(("notebook", [py, script, str(src), str(out)], out))
            out = Path(tmp) / "ours"
            once = [py, __file__, "--preset", args.preset, "--once", str(src), str(out)]
            jobs.append(("ours", once, out))
            if args.cli:
                out = Path(tmp) / "ours-cli"
                cli = [py, "-m", "vae", "preprocess", str(src), "--out", str(out)]
                jobs.append(("ours-cli", [*cli, "--preset", args.preset], out))
            for name, cmd, out in jobs:
                f = measure(name, cmd, out, Path(tmp) / f"{name}-{run}.log")
                if name == "ours":
                    f["report"] = json.loads(f["log"].read_text().strip().splitlines()[-1])
                results.setdefault(name, []).append(f)
                show(run, f, clips)
    print()
    medians = {name: statistics.median(f["wall"] for f in runs) for name, runs in results.items()}
    for name, runs in results.items():
        rss = max(f["peaks"].tree_rss for f in runs)
        cpu = statistics.median(f["cpu"] for f in runs)
        print(
            f"median {name:>9}: {medians[name]:6.2f} s = {clips / medians[name]:7,.0f} clips/s "
            f"over {len(runs)} runs (CPU {cpu:.1f} s); highest peak tree RSS {_mib(rss)}"
        )
    if notebook:
        for name in medians.keys() - {"notebook"}:
            ratio = medians["notebook"] / medians[name]
            cpu = statistics.median(f["cpu"] for f in results["notebook"]) / statistics.median(
                f["cpu"] for f in results[name]
            )
            print(
                f"{name} / notebook: {ratio:.1f}x (whole processes, start-up included); "
                f"CPU time {cpu:.1f}x less (what other jobs on the machine do not change much)"
            )
    last = results["ours"][-1]["report"]
    stages = last["stages"]
    total = sum(stages.values()) or 1.0
    spent = ", ".join(
        f"{s} {stages.get(s, 0):.2f} s ({stages.get(s, 0) / total:.0%})" for s in STAGES
    )
    print(
        f"ours, where the workers' time went (last run, summed over workers): {spent}; "
        f"in preprocess() {last['seconds']:.2f} s of the process's "
        f"{results['ours'][-1]['wall']:.2f} s; torch imported: {last['torch_loaded']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
