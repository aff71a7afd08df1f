"""Preprocess the full Free Spoken Digit Dataset and print clips/s and peak memory.

Run: ``.venv/bin/python benchmarks/preprocess_fsdd.py [--preset seed] [--runs 1]``.
Writes into a temporary folder that is removed afterwards; the source is only read.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from vae import dataset, features  # noqa: E402

FSDD = ROOT.parent / "shared/datasets/fsdd/recordings"


def _rss_mib() -> float:
    """Current resident memory (Linux /proc), to separate the import baseline from the run."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=FSDD)
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--runs", type=int, default=1)
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
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            started = time.perf_counter()
            summary = dataset.preprocess(args.src, Path(tmp) / "fsdd", cfg)
            wall = time.perf_counter() - started
            print(
                f"run {run + 1}: {summary.kept} clips kept, {len(summary.refused)} refused, "
                f"{wall:.2f} s, {summary.kept / wall:.0f} clips/s"
            )
        size = sum(p.stat().st_size for p in (Path(tmp) / "fsdd").iterdir())
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(
        f"dataset on disk {size / 2**20:.0f} MiB; peak RSS {peak_mib:.0f} MiB "
        f"({baseline:.0f} MiB after imports, so {peak_mib - baseline:.0f} MiB for the work)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
