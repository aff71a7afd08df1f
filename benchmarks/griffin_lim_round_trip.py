"""Griffin-Lim vs the notebook's zero-phase inverse on FSDD: spectral convergence and speed.

Run by hand: ``.venv/bin/python benchmarks/griffin_lim_round_trip.py [--every 1]``.
Prints the median spectral convergence of spectrogram -> audio -> spectrogram (no model)
for each preset, and the median time per clip of each inverse.
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

from vae import features as F
from vae.metrics import spectral_convergence
from vae.reader import load_clips

FSDD = Path(__file__).resolve().parents[1].parent / "shared/datasets/fsdd/recordings"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--every", type=int, default=1, help="use every k-th FSDD file")
    parser.add_argument("--presets", default="fsdd,seed")
    args = parser.parse_args()
    files = sorted(FSDD.glob("*.wav"))[:: args.every]
    if not files:
        raise SystemExit(f"no FSDD recordings at {FSDD}")
    print(f"{len(files)} FSDD clips, torch threads {torch.get_num_threads()}")
    for name in args.presets.split(","):
        cfg = F.get_preset(name)
        clips = np.stack([load_clips(f, cfg)[0][1] for f in files])
        feats = F.waveform_to_features(clips, cfg)
        ref = F.features_to_magnitude(feats, cfg)
        for label, invert in [
            (f"griffin-lim x{cfg.griffin_lim_iters}", partial(F.features_to_waveform, cfg=cfg)),
            ("zero-phase istft", partial(F.zero_phase_waveform, cfg=cfg)),
        ]:
            scs, times = [], []
            for start in range(0, len(feats), 100):
                t0 = time.perf_counter()
                wave = invert(feats[start : start + 100])
                times.append((time.perf_counter() - t0) / len(wave) * 1000)
                est = F.stft_magnitude(wave, cfg)
                scs.append(spectral_convergence(ref[start : start + 100], est))
            sc = torch.cat(scs)
            print(
                f"{name:5s} {label:18s} median SC {sc.median():.4f}  p90 {sc.quantile(0.9):.4f}"
                f"  {statistics.median(times):.2f} ms/clip (batched)"
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
