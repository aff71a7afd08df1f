"""Train the default model on FSDD for a while; print seconds per epoch, clips/s, and the
validation reconstruction loss after 1 and after 5 minutes.

Run: ``.venv/bin/python benchmarks/train_fsdd.py [--minutes 5] [--preset fsdd]``.
Preprocesses the recordings into a temporary folder (untimed), then trains with every
setting at its default (the "small" model, batch 64, 2 threads on 2 cores) until the time
is up, stopping after the epoch in progress.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vae.audio import features  # noqa: E402
from vae.data import dataset  # noqa: E402
from vae.training.train import train  # noqa: E402
from vae.training.train_config import TrainConfig  # noqa: E402

FSDD = ROOT.parent / "shared/datasets/fsdd/recordings"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=FSDD)
    parser.add_argument("--preset", default="fsdd")
    parser.add_argument("--minutes", type=float, default=5.0)
    args = parser.parse_args()
    if not args.src.is_dir():
        print(f"{args.src}: FSDD recordings not found; pass --src", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        dataset.preprocess(args.src, data, features.get_preset(args.preset))
        epochs: list[tuple[float, dict]] = []  # (seconds since start, epoch record)
        started = time.perf_counter()

        def progress(event: dict) -> None:
            if event.get("event") == "epoch":
                epochs.append((time.perf_counter() - started, event))
                print(
                    f"epoch {event['epoch']:3d} at {epochs[-1][0]:6.1f} s: "
                    f"{event['seconds']:.1f} s, val recon {event['val_recon']:.2f}",
                    flush=True,
                )

        deadline = started + args.minutes * 60
        train(
            data,
            Path(tmp) / "ckpt",
            train_config=TrainConfig(epochs=10_000),
            progress=progress,
            should_stop=lambda: time.perf_counter() > deadline,
        )
    n_train = epochs[0][1].get("train_clips") if epochs else None
    seconds = [e["seconds"] for _, e in epochs]

    def recon_at(minute: float) -> float:
        done = [e["val_recon"] for t, e in epochs if t <= minute * 60]
        return done[-1] if done else float("nan")

    print(
        f"median epoch {statistics.median(seconds):.1f} s (first {seconds[0]:.1f} s) over "
        f"{len(seconds)} epochs; val recon after 1 min {recon_at(1):.2f}, after "
        f"{args.minutes:g} min {recon_at(args.minutes):.2f}; peak RSS "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
        + (f"; {n_train} train clips" if n_train else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
