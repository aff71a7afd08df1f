"""Peak resident memory of training: train a few epochs on a dataset folder in a child process
(`python -m vae train`, or torchrun with --nproc N) and print the child's peak RSS.

Run: ``.venv/bin/python benchmarks/train_memory.py DATA [--epochs 1] [--size small]
[--batch-size 64] [--threads 0] [--nproc 1] [--limit-gb 3]``. Exits 1 when the peak passes
``--limit-gb``. The peak is the kernel's high-water mark of the largest child (with --nproc,
the largest rank), read with getrusage(RUSAGE_CHILDREN) once the children are reaped; page
cache that reading features.npy fills is the kernel's, not counted. The checkpoint goes to a
temporary folder and is deleted.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def command(args: argparse.Namespace, out: Path) -> list[str]:
    """The training command line: plain, or under torchrun on this machine."""
    launcher = [sys.executable]
    if args.nproc > 1:
        launcher += [
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={args.nproc}",
        ]
    train = ["-m", "vae", "train", str(args.data), "--out", str(out), "--epochs", str(args.epochs)]
    train += ["--size", args.size, "--batch-size", str(args.batch_size)]
    if args.threads:
        train += ["--threads", str(args.threads)]
    return launcher + train


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="dataset folder written by preprocess")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--size", default="small")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="per process (0: the default)")
    parser.add_argument("--nproc", type=int, default=1, help="processes under torchrun")
    parser.add_argument("--limit-gb", type=float, default=3.0)
    args = parser.parse_args()
    info = json.loads((args.data / "config.json").read_text())
    features = (args.data / "features.npy").stat().st_size
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        done = subprocess.run(command(args, Path(tmp) / "ckpt"), cwd=ROOT)
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        print(f"training failed with exit code {done.returncode}", file=sys.stderr)
        return 2
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
    print(
        f"peak RSS {peak / 2**30:.2f} GiB ({peak / 2**20:.0f} MiB) training {args.epochs} epoch(s) "
        f"of {info['counts']['kept']} clips (features.npy {features / 2**30:.2f} GiB), "
        f"{args.nproc} process(es), in {seconds:.0f} s; limit {args.limit_gb:g} GiB"
    )
    return 0 if peak <= args.limit_gb * 2**30 else 1


if __name__ == "__main__":
    sys.exit(main())
