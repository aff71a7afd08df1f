"""Realism figures of one or more checkpoints, side by side, for the README's stage-2 study:

    .venv/bin/python scripts/realism_study.py CKPT... [--data data/fsdd] [--judge DIR]

For each checkpoint: 20 prior samples per label (fixed seeds) and the reconstructions of
the validation split, all through Griffin-Lim, scored by the judge (Fréchet distance of its
embeddings against 1,000 training clips, accuracy) and by the fine structure of the
spectrum (as a ratio to the real validation clips), with the reconstructions' LSD and SC.
The floor (real clips, their Griffin-Lim copies) is printed first. Smaller than
``python -m vae evaluate`` (200 samples per label there), so it runs in about a minute.
With ``--picture FILE.png`` it also draws the same five validation clips (digits 0-4) as
heard: the real clip, then each checkpoint's reconstruction through Griffin-Lim, one row
each, on one colour scale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vae.audio import features as F  # noqa: E402
from vae.audio.metrics import (  # noqa: E402
    log_spectral_distance,
    spectral_convergence,
    waveform_fine_structure,
)
from vae.data.dataset import load_dataset  # noqa: E402
from vae.evaluation.distribution import embedding_stats, frechet_distance_from_stats  # noqa: E402
from vae.evaluation.judge import Judge  # noqa: E402
from vae.synthesis.inference import Synthesiser  # noqa: E402

SAMPLES_PER_LABEL, SAMPLE_SEED, REFERENCE_CLIPS = 20, 1234, 1000
# viridis at five stops, for a colour map without matplotlib: feature 0 (-80 dB) -> 1 (0 dB)
VIRIDIS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]])


def _coloured(feats: np.ndarray) -> np.ndarray:
    """Features (bins, frames) in [0, 1] -> an RGB image (bins, frames, 3), low bins at
    the bottom."""
    pos = np.clip(feats[::-1], 0, 1) * (len(VIRIDIS) - 1)
    low = np.minimum(pos.astype(int), len(VIRIDIS) - 2)
    frac = (pos - low)[..., None]
    return ((1 - frac) * VIRIDIS[low] + frac * VIRIDIS[low + 1]).astype(np.uint8)


def picture(rows: list[tuple[str, np.ndarray]], file: Path, scale: int = 2) -> None:
    """A grid of spectrograms: one row per (name, features (clips, bins, frames))."""
    from PIL import Image, ImageDraw

    clips, bins, frames = rows[0][1].shape
    label_w, gap = 190, 4
    width = label_w + clips * (frames * scale + gap)
    image = Image.new("RGB", (width, len(rows) * (bins * scale + gap)), "white")
    draw = ImageDraw.Draw(image)
    for r, (name, feats) in enumerate(rows):
        top = r * (bins * scale + gap)
        draw.text((6, top + bins * scale // 2 - 6), name, fill="black")
        for c in range(clips):
            tile = Image.fromarray(_coloured(feats[c])).resize((frames * scale, bins * scale))
            image.paste(tile, (label_w + c * (frames * scale + gap), top))
    image.quantize(colors=128).save(file, optimize=True)  # a palette: a fifth of the bytes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "fsdd")
    parser.add_argument("--judge", type=Path, default=ROOT / "checkpoints/fsdd-digits/judge")
    parser.add_argument("--picture", type=Path, help="also draw five clips per checkpoint here")
    parser.add_argument(
        "--names", help="comma-separated row names for the picture (default: folder names)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    ds, judge = load_dataset(args.data), Judge.load(args.judge)
    cfg, rate = ds.config, ds.config.sample_rate
    rows = ds.split_indices("train")
    ref_rows = np.sort(np.random.default_rng(0).choice(rows, REFERENCE_CLIPS, replace=False))
    reference = embedding_stats(judge.embed(np.asarray(ds.waveforms[ref_rows], np.float32), rate))
    val = np.sort(ds.split_indices("val"))
    feats = torch.from_numpy(np.asarray(ds.features[val], np.float32))

    def frechet(waves: np.ndarray) -> float:
        return frechet_distance_from_stats(*embedding_stats(judge.embed(waves, rate)), *reference)

    def fine(waves: np.ndarray) -> float:
        return float(waveform_fine_structure(waves, cfg).mean())

    real = np.asarray(ds.waveforms[val], np.float32)
    copies = F.features_to_waveform(feats, cfg).numpy()
    fine_real, floor = fine(real), frechet(copies)
    print(f"real clips: fine structure {fine_real:.2f} dB, Fréchet {frechet(real):.3f}")
    print(
        f"Griffin-Lim copies: fine structure x{fine(copies) / fine_real:.2f}, Fréchet {floor:.3f}"
    )
    shown = np.array([val[np.flatnonzero(ds.label_indices[val] == k)[0]] for k in range(5)])
    again = F.waveform_to_features  # what is heard, analysed again
    rows = [("real clips", again(np.asarray(ds.waveforms[shown], np.float32), cfg).numpy())]
    names = args.names.split(",") if args.names else [p.name for p in args.checkpoints]
    print("checkpoint | samples: Fréchet (x copies), fine, heard right, worst label | "
          "reconstructions: Fréchet (x copies), fine, heard right, LSD dB, SC")  # fmt: skip
    for name, path in zip(names, args.checkpoints, strict=True):
        synth = Synthesiser.load(path, phase="griffin-lim")
        five = torch.from_numpy(np.asarray(ds.features[shown], np.float32))
        heard = synth.to_audio(synth.reconstruct(five, ds.label_indices[shown].tolist()))
        rows.append((name, again(heard, cfg).numpy()))
        labels = ds.label_indices[val]
        recon = synth.to_audio(synth.reconstruct(feats, labels.tolist()))
        ref_mag = F.features_to_magnitude(feats, cfg)
        est_mag = F.stft_magnitude(torch.from_numpy(recon), cfg)
        lsd = float(log_spectral_distance(ref_mag, est_mag, F.magnitude_floor(cfg)).median())
        sc = float(spectral_convergence(ref_mag, est_mag).median())
        r_probs, r_emb = judge.listen(recon, rate)
        order = [judge.label_names.index(name) for name in ds.label_names]
        r_acc = float((r_probs.argmax(1) == np.array(order)[labels]).mean())
        parts = [synth.sample(SAMPLES_PER_LABEL, name, seed=SAMPLE_SEED + k)[1]
                 for k, name in enumerate(synth.label_names)]  # fmt: skip
        samples = synth.to_audio(torch.cat(parts))
        truth = np.repeat([judge.label_names.index(n) for n in synth.label_names],
                          SAMPLES_PER_LABEL)  # fmt: skip
        s_probs, s_emb = judge.listen(samples, rate)
        right = s_probs.argmax(1) == truth
        worst = min(float(right[truth == k].mean()) for k in np.unique(truth))
        s_fr = frechet_distance_from_stats(*embedding_stats(s_emb), *reference)
        r_fr = frechet_distance_from_stats(*embedding_stats(r_emb), *reference)
        print(
            f"{path} | {s_fr:.3f} (x{s_fr / floor:.2f}), x{fine(samples) / fine_real:.2f}, "
            f"{right.mean():.1%}, {worst:.0%} | {r_fr:.3f} (x{r_fr / floor:.2f}), "
            f"x{fine(recon) / fine_real:.2f}, {r_acc:.1%}, {lsd:.2f}, {sc:.3f}",
            flush=True,
        )
    if args.picture:
        picture(rows, args.picture)
        print(f"wrote {args.picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
