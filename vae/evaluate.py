"""How good is a checkpoint? Reconstruction figures on a dataset split, after the audio round trip.

Each clip goes encode -> decode -> Griffin-Lim -> STFT, and is compared with the magnitude
its stored features stand for. The same figures for Griffin-Lim alone (no model) are
reported beside them, so the cost of phase recovery and the cost of the model can be told apart.
With a judge (``vae.judge``), the same clips, their reconstructions and prior samples are
also named by a classifier: is a generated "7" heard as a 7?
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from vae import features as F
from vae.checkpoints import check_compatible
from vae.dataset import SpectrogramSet
from vae.inference import Synthesiser
from vae.judge import Judge
from vae.metrics import log_spectral_distance, spectral_convergence

Progress = Callable[[int, int], None] | None


def _summary(values: np.ndarray) -> dict[str, float]:
    return {
        "median": float(np.median(values)),
        "mean": float(np.mean(values)),
        "p90": float(np.percentile(values, 90)),
    }


def evaluate_reconstruction(
    synth: Synthesiser,
    ds: SpectrogramSet,
    split: str = "val",
    batch_size: int = 64,
    progress: Progress = None,
) -> dict:
    """Log-spectral distance (dB) and spectral convergence on ``split`` of ``ds``.

    Returns:
        {"split", "clips", "model": {"lsd_db": {...}, "sc": {...}, "feature_mse"},
         "griffin_lim_only": {"lsd_db": {...}, "sc": {...}}} with median/mean/p90 each.
    """
    cfg = synth.config
    check_compatible(synth.checkpoint, ds.config, f"dataset {ds.root}")
    idx = ds.split_indices(split)
    if len(idx) == 0:
        raise ValueError(f"dataset {ds.root} has no clips in split {split!r}")
    labels_all = ds.label_indices
    floor = F.magnitude_floor(cfg)
    lsd, sc, gl_lsd, gl_sc, mse = [], [], [], [], []
    for start in range(0, len(idx), batch_size):
        batch = idx[start : start + batch_size]
        feats = torch.from_numpy(np.asarray(ds.features[batch], dtype=np.float32))
        labels = labels_all[batch].tolist() if synth.conditional else None
        recon = synth.reconstruct(feats, labels)  # (B, bins, frames)
        mse.append(((recon - feats) ** 2).mean(dim=(-2, -1)).numpy())
        ref = F.features_to_magnitude(feats, cfg)  # (B, stft_bins, frames)
        for source, out_lsd, out_sc in ((recon, lsd, sc), (feats, gl_lsd, gl_sc)):
            est = F.stft_magnitude(torch.from_numpy(synth.to_audio(source)), cfg)
            out_lsd.append(log_spectral_distance(ref, est, floor).numpy())
            out_sc.append(spectral_convergence(ref, est).numpy())
        if progress:
            progress(min(start + batch_size, len(idx)), len(idx))
    cat = np.concatenate
    return {
        "split": split,
        "clips": int(len(idx)),
        "model": {
            "lsd_db": _summary(cat(lsd)),
            "sc": _summary(cat(sc)),
            "feature_mse": float(cat(mse).mean()),
        },
        "griffin_lim_only": {"lsd_db": _summary(cat(gl_lsd)), "sc": _summary(cat(gl_sc))},
    }


# ------------------------------------------------------------------------------ the judge


def _through_audio(synth: Synthesiser, feats: torch.Tensor) -> torch.Tensor:
    """Features (B, bins, frames) -> Griffin-Lim audio -> features again: what a listener's
    ear (the judge) gets from a decoded spectrogram."""
    return F.waveform_to_features(synth.to_audio(feats), synth.config)


def _scores(probs: np.ndarray, truth: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Accuracy, per-label accuracy and the confusion matrix (rows: truth, columns: judged)."""
    judged = probs.argmax(axis=1)
    confusion = np.zeros((len(names), len(names)), dtype=np.int64)
    np.add.at(confusion, (truth, judged), 1)
    per_label = {
        name: float(confusion[i, i] / confusion[i].sum())
        for i, name in enumerate(names)
        if confusion[i].sum()
    }
    return {
        "accuracy": float((judged == truth).mean()) if len(truth) else float("nan"),
        "per_label": per_label,
        "confusion": confusion.tolist(),
    }


def _spread(feats: np.ndarray) -> float:
    """Mean pairwise Euclidean distance between spectrograms (n, bins, frames)."""
    flat = feats.reshape(len(feats), -1).astype(np.float64)
    if len(flat) < 2:
        return float("nan")
    sq = (flat**2).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * flat @ flat.T, 0.0)
    return float(np.sqrt(d2)[np.triu_indices(len(flat), 1)].mean())


def evaluate_with_judge(
    synth: Synthesiser,
    ds: SpectrogramSet,
    judge: Judge,
    split: str = "val",
    samples_per_label: int = 20,
    seed: int = 0,
    batch_size: int = 64,
    progress: Progress = None,
) -> dict[str, Any]:
    """The judge's verdicts on real clips of ``split``, on their reconstructions after the
    audio round trip, and (conditional models) on clips sampled from the prior per label.

    Diversity of samples is the mean pairwise distance of a label's samples over that of its
    real clips (up to 200, any split): near 1 is as varied as real speech; near 0 is one
    clip said again and again.
    Returns:
        {"labels", "real", "reconstructed", "samples" (or None)}, each of the three with
        accuracy, per_label and confusion; "samples" adds "diversity".
    """
    check_compatible(synth.checkpoint, ds.config, f"dataset {ds.root}")
    judge.check_features(synth.config, f"checkpoint {synth.checkpoint.path}")
    names = judge.label_names
    index = {name: i for i, name in enumerate(names)}
    idx = np.array([i for i in ds.split_indices(split) if ds.labels[i] in index], np.int64)
    if not len(idx):
        raise ValueError(f"dataset {ds.root}: no clips in split {split!r} with the judge's labels")
    truth = np.array([index[ds.labels[i]] for i in idx])
    real, recon = [], []
    total = len(idx) + (samples_per_label * len(names) if synth.conditional else 0)
    for start in range(0, len(idx), batch_size):
        batch = idx[start : start + batch_size]
        feats = torch.from_numpy(np.asarray(ds.features[batch], dtype=np.float32))
        labels = [ds.labels[i] for i in batch]
        cond = [synth.label_index(lab) for lab in labels] if synth.conditional else None
        real.append(judge.probabilities(feats))
        recon.append(judge.probabilities(_through_audio(synth, synth.reconstruct(feats, cond))))
        if progress:
            progress(start + len(batch), total)
    report: dict[str, Any] = {
        "labels": names,
        "real": _scores(np.concatenate(real), truth, names),
        "reconstructed": _scores(np.concatenate(recon), truth, names),
        "samples": None,
    }
    if synth.conditional and samples_per_label > 0:
        probs, said, diversity, done = [], [], {}, len(idx)
        for k, name in enumerate(names):
            if name not in synth.label_names:
                continue
            _, feats = synth.sample(samples_per_label, name, seed=seed + k)
            heard = _through_audio(synth, feats).numpy()  # (n, bins, frames)
            probs.append(judge.probabilities(heard))
            said += [k] * samples_per_label
            mine = np.array([i for i, lab in enumerate(ds.labels) if lab == name])[:200]
            real = np.asarray(ds.features[np.sort(mine)], dtype=np.float32)
            diversity[name] = _spread(heard) / _spread(real) if len(real) > 1 else float("nan")
            done += samples_per_label
            if progress:
                progress(done, total)
        samples = _scores(np.concatenate(probs), np.array(said), names)
        values = [v for v in diversity.values() if np.isfinite(v)]
        samples["diversity"] = {
            "mean": float(np.mean(values)) if values else float("nan"),
            "per_label": diversity,
        }
        samples["per_label_samples"] = samples_per_label
        report["samples"] = samples
    return report


def interpolation_monotonicity(
    synth: Synthesiser,
    ds: SpectrogramSet,
    judge: Judge,
    pairs: int = 100,
    steps: int = 8,
    split: str = "val",
    seed: int = 0,
    tolerance: float = 0.05,
) -> dict[str, Any]:
    """Do morphs move from A's label to B's? For ``pairs`` random pairs of ``split`` clips
    with different labels, the judge hears each step of the path (through audio); a pair
    counts when P(B's label) never falls and P(A's label) never rises by more than
    ``tolerance`` from one step to the next.

    Returns:
        {"pairs", "steps", "monotonic_fraction", "mean_start_prob", "mean_end_prob"}
    """
    judge.check_features(synth.config, f"checkpoint {synth.checkpoint.path}")
    names = judge.label_names
    idx = np.array([i for i in ds.split_indices(split) if ds.labels[i] in names], np.int64)
    rng = np.random.default_rng(seed)
    chosen: list[tuple[int, int]] = []
    for _ in range(pairs * 50):
        if len(chosen) == pairs:
            break
        a, b = rng.choice(idx, 2, replace=False)
        if ds.labels[a] != ds.labels[b]:
            chosen.append((int(a), int(b)))
    if not chosen:
        raise ValueError(f"dataset {ds.root}: split {split!r} needs two labels for morphs")
    ok, start, end = 0, [], []
    for a, b in chosen:
        clip_a, clip_b = (
            synth.clip_from_dataset(ds, ds.ids[a]),
            synth.clip_from_dataset(ds, ds.ids[b]),
        )
        _, feats = synth.interpolate(clip_a, clip_b, steps)
        probs = judge.probabilities(_through_audio(synth, feats))  # (steps, n_labels)
        pa, pb = probs[:, names.index(ds.labels[a])], probs[:, names.index(ds.labels[b])]
        ok += bool((np.diff(pb) >= -tolerance).all() and (np.diff(pa) <= tolerance).all())
        start.append(pa[0])
        end.append(pb[-1])
    return {
        "pairs": len(chosen),
        "steps": steps,
        "monotonic_fraction": ok / len(chosen),
        "mean_start_prob": float(np.mean(start)),
        "mean_end_prob": float(np.mean(end)),
    }
