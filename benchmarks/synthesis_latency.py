"""Latency of one clip through a checkpoint: encode, decode, Griffin-Lim, the vocoder, and a
latent vector to a waveform (decode + phase), for 1 s of audio.

Run: ``.venv/bin/python benchmarks/synthesis_latency.py [--repeats 50] [--threads 1]
[--vocoder DIR]``. Uses the default "small" model and the default vocoder (untrained
weights: latency does not depend on training; ``--vocoder`` times a trained one's shape at
its own preset) at the fsdd preset and at the seed preset stretched to 1 s. Prints medians
and 90th percentiles.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vae.audio import features as F  # noqa: E402
from vae.model.conv_vae import ConvVAE, ModelConfig  # noqa: E402
from vae.vocoder.network import Vocoder, VocoderConfig, VocoderNet, load_vocoder  # noqa: E402

PRESETS = {
    "fsdd (1.02 s, 128 x 128)": F.get_preset("fsdd"),
    "seed at 1 s (256 x 87)": F.get_preset("seed").replace(clip_samples=22050),
}


CLOCK = time.perf_counter  # --cpu-time: time.thread_time


def timed(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm: kernels, caches
    times = []
    for _ in range(repeats):
        t0 = CLOCK()
        fn()
        times.append((CLOCK() - t0) * 1000)
    return statistics.median(times), float(np.percentile(times, 90))


@torch.no_grad()
def bench(
    cfg: F.FeatureConfig, repeats: int, vocoder: Vocoder | None = None
) -> dict[str, tuple[float, float]]:
    """(median, p90) ms of each step for one clip of the preset ``cfg``."""
    model = ConvVAE(ModelConfig(*cfg.shape)).eval()
    x = torch.rand(1, *cfg.shape)
    z = torch.randn(1, model.config.latent_dim)
    feats = model.decode(z)
    vocoder = vocoder or Vocoder(VocoderNet(VocoderConfig(cfg)))
    k = vocoder.config.refine_iters or 16
    return {
        **voc_rows(model, z, feats, vocoder, k, repeats),
        "encode": timed(lambda: model.encode(x), repeats),
        "decode": timed(lambda: model.decode(z), repeats),
        f"Griffin-Lim x{cfg.griffin_lim_iters}": timed(
            lambda: F.features_to_waveform(feats, cfg), repeats
        ),
        "latent -> waveform": timed(lambda: F.features_to_waveform(model.decode(z), cfg), repeats),
    }


def voc_rows(model, z, feats, vocoder: Vocoder, k: int, repeats: int) -> dict:
    """The vocoder alone, with ``k`` Griffin-Lim iterations after it, and from a latent."""
    p = vocoder.config
    name = f"vocoder w{p.width} x{p.layers} ({p.phase})"
    return {
        name: timed(lambda: vocoder.to_waveform(feats, 0), repeats),
        f"vocoder + {k} GL": timed(lambda: vocoder.to_waveform(feats, k), repeats),
        "latent -> vocoder": timed(lambda: vocoder.to_waveform(model.decode(z), 0), repeats),
        f"latent -> vocoder+{k} GL": timed(
            lambda: vocoder.to_waveform(model.decode(z), k), repeats
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the app uses 1)")
    parser.add_argument("--vocoder", help="a trained vocoder folder (default: untrained)")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time the thread's CPU instead of the wall clock (1 thread only): on a machine "
        "others keep busy, close to what an idle one would take",
    )
    args = parser.parse_args()
    if args.cpu_time and args.threads != 1:
        parser.error("--cpu-time measures one thread: use it with --threads 1")
    global CLOCK
    CLOCK = time.thread_time if args.cpu_time else time.perf_counter
    torch.set_num_threads(args.threads)
    clock = "thread CPU time" if args.cpu_time else "wall clock"
    print(f"torch threads {torch.get_num_threads()}, {clock}; medians (p90) in ms per clip")
    presets = PRESETS
    vocoder = load_vocoder(args.vocoder) if args.vocoder else None
    if vocoder is not None:
        presets = {f"{args.vocoder} ({vocoder.config.feature.n_bins} bins)": vocoder.config.feature}
    for title, cfg in presets.items():
        print(title)
        for name, (median, p90) in bench(cfg, args.repeats, vocoder).items():
            print(f"  {name:<26} {median:6.1f} ({p90:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
