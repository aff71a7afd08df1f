"""Preprocess the Free Spoken Digit Dataset and print clips/s and peak memory.

Run: ``.venv/bin/python benchmarks/preprocess_fsdd.py [--preset seed] [--runs 3] [--copies 10]``.
``--copies 10`` preprocesses one corpus of 10 copies of the recordings (symlinks in 10
sub-folders: 30,000 clips) in a single call, the issue's "repeated 10 times in one run".
Writes into a temporary folder that is removed afterwards; the source is only read.
Prints the median over the runs and the peak resident memory of this process and of its
worker processes (preprocessing forks one per core).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from vae.audio import features  # noqa: E402
from vae.data import dataset  # noqa: E402

FSDD = ROOT.parent / "shared/datasets/fsdd/recordings"


def _rss_mib() -> float:
    """Current resident memory (Linux /proc), to separate the import baseline from the run."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=FSDD)
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--copies", type=int, default=1, help="copies of the source in one run")
    args = parser.parse_args()
    if not args.src.is_dir():
        print(f"{args.src}: FSDD recordings not found; pass --src", file=sys.stderr)
        return 1
    cfg = features.get_preset(args.preset)
    baseline = _rss_mib()  # torch + torchaudio alone
    print(
        f"preset {args.preset}: {cfg.shape[0]} x {cfg.shape[1]} at {cfg.sample_rate} Hz, "
        f"torch threads {torch.get_num_threads()}"
    )
    rates = []
    with tempfile.TemporaryDirectory() as tmp:
        src = corpus(args.src, args.copies, Path(tmp) / "corpus")
        for run in range(args.runs):
            out = Path(tmp) / f"out{run}"  # a fresh folder: replacing one would time its removal
            started = time.perf_counter()
            summary = dataset.preprocess(src, out, cfg)
            wall = time.perf_counter() - started
            rates.append(summary.kept / wall)
            print(
                f"run {run + 1}: {summary.kept} clips kept, {len(summary.refused)} refused, "
                f"{wall:.2f} s, {summary.kept / wall:.0f} clips/s"
            )
            size = sum(p.stat().st_size for p in out.iterdir())
            shutil.rmtree(out)  # untimed
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    workers_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"median {statistics.median(rates):.0f} clips/s over {args.runs} runs; dataset on disk "
        f"{size / 2**20:.0f} MiB; peak RSS {peak_mib:.0f} MiB ({baseline:.0f} MiB after "
        f"imports), largest worker {workers_mib:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
