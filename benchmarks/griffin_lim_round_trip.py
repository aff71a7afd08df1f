"""Griffin-Lim vs the notebook's zero-phase inverse on FSDD, and Griffin-Lim's momentum:
spectral convergence, log-spectral distance and speed.

Run by hand: ``.venv/bin/python benchmarks/griffin_lim_round_trip.py [--clips 300]
[--momenta 0.9,0.99]``. Prints, for each preset, the median spectral convergence and
log-spectral distance (dB) of spectrogram -> audio -> spectrogram (no model) for
Griffin-Lim at each momentum (the preset's own when none is given) and for the zero-phase
inverse, with the median time per clip of each.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

import numpy as np
import torch

from vae.audio import features as F
from vae.audio.io import peak_normalise
from vae.audio.metrics import log_spectral_distance, spectral_convergence
from vae.data.reader import load_clips

FSDD = Path(__file__).resolve().parents[1].parent / "shared/datasets/fsdd/recordings"
BATCH = 100


def _files(every: int, clips: int) -> list[Path]:
    """Every ``every``-th FSDD file, then ``clips`` of them spread evenly (every digit and
    speaker is in: the names sort by digit, then speaker)."""
    files = sorted(FSDD.glob("*.wav"))[::every]
    if clips and len(files) > clips:
        files = [files[i] for i in np.linspace(0, len(files) - 1, clips).round().astype(int)]
    return files


def _round_trip(invert, feats: torch.Tensor, cfg: F.FeatureConfig) -> tuple:
    """(SC (N,), LSD dB (N,), ms per clip in batches) of features (N, bins, frames)."""
    ref = F.features_to_magnitude(feats, cfg)
    floor = F.magnitude_floor(cfg)
    scs, lsds, times = [], [], []
    for start in range(0, len(feats), BATCH):
        t0 = time.perf_counter()
        wave = invert(feats[start : start + BATCH])
        times.append((time.perf_counter() - t0) / len(wave) * 1000)
        est = F.stft_magnitude(wave, cfg)
        scs.append(spectral_convergence(ref[start : start + BATCH], est))
        lsds.append(log_spectral_distance(ref[start : start + BATCH], est, floor))
    return torch.cat(scs), torch.cat(lsds), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--every", type=int, default=1, help="use every k-th FSDD file")
    parser.add_argument("--clips", type=int, default=0, help="at most this many (0: all)")
    parser.add_argument("--presets", default="fsdd,seed")
    parser.add_argument(
        "--momenta", default="", help="Griffin-Lim momenta to compare, e.g. 0.9,0.99 "
        "(default: each preset's own)"
    )  # fmt: skip
    parser.add_argument("--iters", type=int, default=0, help="Griffin-Lim iterations (0: preset's)")
    args = parser.parse_args()
    files = _files(args.every, args.clips)
    if not files:
        raise SystemExit(f"no FSDD recordings at {FSDD}")
    print(f"{len(files)} FSDD clips, torch threads {torch.get_num_threads()}")
    for name in args.presets.split(","):
        cfg = F.get_preset(name)
        if args.iters:
            cfg = cfg.replace(griffin_lim_iters=args.iters)
        # Peak-normalised as preprocess stores them (vae.data.ingest).
        clips = peak_normalise(np.stack([load_clips(f, cfg)[0][1] for f in files]))
        feats = F.waveform_to_features(clips, cfg)
        momenta = [float(m) for m in args.momenta.split(",")] if args.momenta else []
        inverses = [
            (
                f"griffin-lim x{cfg.griffin_lim_iters} m{m:g}",
                partial(F.features_to_waveform, cfg=cfg.replace(griffin_lim_momentum=m)),
            )
            for m in momenta or [cfg.griffin_lim_momentum]
        ]
        inverses.append(("zero-phase istft", partial(F.zero_phase_waveform, cfg=cfg)))
        for label, invert in inverses:
            sc, lsd, ms = _round_trip(invert, feats, cfg)
            print(
                f"{name:5s} {label:24s} median SC {np.median(sc):.4f} (p90 {sc.quantile(0.9):.4f})"
                f"  LSD {np.median(lsd):.3f} dB (p90 {lsd.quantile(0.9):.3f})"
                f"  {ms:.2f} ms/clip (batched)"
            )
        one = feats[:1]
        lat = []
        for _ in range(20):
            t0 = time.perf_counter()
            F.features_to_waveform(one, cfg)
            lat.append((time.perf_counter() - t0) * 1000)
        print(f"{name:5s} griffin-lim one clip: median {statistics.median(lat):.1f} ms")


if __name__ == "__main__":
    main()
