"""How good is a checkpoint? Reconstruction figures on a dataset split, after the audio round trip.

Each clip goes encode -> decode -> Griffin-Lim -> STFT, and is compared with the magnitude
its stored features stand for. The same figures for Griffin-Lim alone (no model) are
reported beside them, so the cost of phase recovery and the cost of the model can be told apart.
With a judge (``vae.evaluation.judge``), the same clips, their reconstructions and prior samples are
also heard by a classifier, always as audio (``Synthesiser.to_audio``: the checkpoint's own
phase method): is a generated "7" heard as a 7, and how far are the sets as a whole from
the real clips (Fréchet distance of the judge's embeddings, inception score:
``vae.evaluation.distribution``)? Every set's fine structure (``vae.audio.metrics.fine_structure``:
how sharp
its spectrum is, as a ratio to the real clips') is measured from the same audio, and
``realism_rows`` gathers both figures into the table that reports lead with.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vae.audio import features as F
from vae.audio.metrics import (
    log_spectral_distance,
    spectral_convergence,
    summarise,
    waveform_fine_structure,
)
from vae.data.dataset import SpectrogramSet
from vae.evaluation.distribution import embedding_stats, ratio, set_figures
from vae.evaluation.judge import Judge
from vae.model.checkpoints import check_compatible
from vae.progress import Progress
from vae.synthesis.inference import Synthesiser


def _fine_figures(values: np.ndarray, real: np.ndarray | None) -> dict[str, Any]:
    """Per-clip fine structure (n,) in dB -> {"fine_structure_db": median/mean/p90,
    "fine_structure_vs_real": its mean over that of the real clips' (n_real,), or None}."""
    return {
        "fine_structure_db": summarise(values),
        "fine_structure_vs_real": ratio(
            float(values.mean()), float(real.mean()) if real is not None else None
        ),
    }


def evaluate_reconstruction(
    synth: Synthesiser,
    ds: SpectrogramSet,
    split: str = "val",
    batch_size: int = 64,
    progress: Progress | None = None,
) -> dict:
    """Log-spectral distance (dB) and spectral convergence on ``split`` of ``ds``, and the
    fine structure (dB) of the real clips, of their copies and of the reconstructions, as
    heard: no judge is needed for it.

    Returns:
        {"split", "clips", "model": {"lsd_db": {...}, "sc": {...}, "feature_mse",
         "fine_structure_db": {...}, "fine_structure_vs_real"},
         "griffin_lim_only": {"lsd_db", "sc", "fine_structure_db", "fine_structure_vs_real"},
         "phase": the phase method of the model's figures, "vocoder_only": its copies'
         figures like griffin_lim_only's (None without a vocoder),
         "real": the clips' own audio: {"fine_structure_db", "fine_structure_vs_real": 1}},
        with median/mean/p90 in each {...}; "fine_structure_vs_real" is the ratio of means.
    """
    cfg = synth.config
    check_compatible(synth.checkpoint, ds.config, f"dataset {ds.root}")
    idx = ds.split_indices(split)
    if len(idx) == 0:
        raise ValueError(f"dataset {ds.root} has no clips in split {split!r}")
    labels_all = ds.label_indices
    floor = F.magnitude_floor(cfg)
    lsd, sc, gl_lsd, gl_sc, voc_lsd, voc_sc, mse = [], [], [], [], [], [], []
    fine: dict[str, list[np.ndarray]] = {"real": [], "model": [], "gl": [], "voc": []}
    for start in range(0, len(idx), batch_size):
        batch = idx[start : start + batch_size]
        feats = torch.from_numpy(np.asarray(ds.features[batch], dtype=np.float32))
        labels = labels_all[batch].tolist() if synth.conditional else None
        recon = synth.reconstruct(feats, labels)  # (B, bins, frames)
        mse.append(((recon - feats) ** 2).mean(dim=(-2, -1)).numpy())
        ref = F.features_to_magnitude(feats, cfg)  # (B, stft_bins, frames)
        # The model's figures go through the phase it plays with (a vocoder when it has one);
        # the baseline is always Griffin-Lim alone.
        runs = [
            (synth.to_audio(recon), lsd, sc, fine["model"]),
            (F.features_to_waveform(feats, cfg).numpy(), gl_lsd, gl_sc, fine["gl"]),
        ]
        if synth.phase_method == "vocoder":  # its copies of the real clips, beside Griffin-Lim's
            runs.append((synth.to_audio(feats), voc_lsd, voc_sc, fine["voc"]))
        for audio, out_lsd, out_sc, out_fine in runs:
            est = F.stft_magnitude(torch.from_numpy(audio), cfg)
            out_lsd.append(log_spectral_distance(ref, est, floor).numpy())
            out_sc.append(spectral_convergence(ref, est).numpy())
            out_fine.append(waveform_fine_structure(audio, cfg, est))  # est: its STFT
        fine["real"].append(waveform_fine_structure(ds.waveforms[batch], cfg))
        if progress:
            progress(min(start + batch_size, len(idx)), len(idx))
    cat = np.concatenate
    real = cat(fine["real"])
    return {
        "split": split,
        "clips": int(len(idx)),
        "model": {
            "lsd_db": summarise(cat(lsd)),
            "sc": summarise(cat(sc)),
            "feature_mse": float(cat(mse).mean()),
            **_fine_figures(cat(fine["model"]), real),
        },
        "griffin_lim_only": {
            "lsd_db": summarise(cat(gl_lsd)),
            "sc": summarise(cat(gl_sc)),
            **_fine_figures(cat(fine["gl"]), real),
        },
        "phase": synth.phase_method,
        "vocoder_only": (
            {
                "lsd_db": summarise(cat(voc_lsd)),
                "sc": summarise(cat(voc_sc)),
                **_fine_figures(cat(fine["voc"]), real),
            }
            if voc_lsd
            else None
        ),
        "real": _fine_figures(real, real),
    }


# ------------------------------------------------------------------------------ the judge


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


def _check_judge(synth: Synthesiser, judge: Judge) -> int:
    """The checkpoint's sample rate, once the judge is found to hear it and its labels."""
    rate = synth.config.sample_rate
    judge.check_compatible(rate, synth.label_names, f"checkpoint {synth.checkpoint.path}")
    return rate


def _reference_rows(ds: SpectrogramSet, names: list[str], cap: int, seed: int) -> np.ndarray:
    """Up to ``cap`` training clips with the judge's labels, a seeded choice, sorted."""
    rows = np.array([i for i in ds.split_indices("train") if ds.labels[i] in names], np.int64)
    if len(rows) > cap:
        rows = np.sort(np.random.default_rng(seed).choice(rows, cap, replace=False))
    return rows


def _joined(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Batches of (probabilities (b, K), embeddings (b, C)) -> all of them, concatenated."""
    return np.concatenate([p for p, _ in parts]), np.concatenate([e for _, e in parts])


def _distribution(
    reference: np.ndarray,
    sets: dict[str, tuple[np.ndarray, np.ndarray] | None],
    fine: dict[str, np.ndarray],
) -> dict[str, Any] | None:
    """The "distribution" section: each set's (probabilities, embeddings) against the
    reference embeddings (n, C), its clips' fine structure (n,) in dB beside it, and the
    ratios to read them by. None without two reference clips."""
    if len(reference) < 2:
        return None
    stats = embedding_stats(reference)
    out: dict[str, Any] = {"reference": {"split": "train", "clips": int(len(reference))}}
    for name, heard in sets.items():
        usable = heard is not None and len(heard[1]) >= 2
        out[name] = (
            {**set_figures(stats, heard[1], heard[0]), **_fine_figures(fine[name], fine["real"])}
            if usable
            else None
        )

    def figure(name: str, key: str) -> float | None:
        return out[name][key] if out.get(name) else None

    out["reconstructed_vs_phase"] = ratio(
        figure("reconstructed", "frechet"), figure("phase_copies", "frechet")
    )
    out["samples_vs_phase"] = ratio(figure("samples", "frechet"), figure("phase_copies", "frechet"))
    out["samples_is_vs_real"] = ratio(
        figure("samples", "inception_score"), figure("real", "inception_score")
    )
    return out


def evaluate_with_judge(
    synth: Synthesiser,
    ds: SpectrogramSet,
    judge: Judge,
    split: str = "val",
    samples_per_label: int = 20,
    seed: int = 0,
    batch_size: int = 64,
    reference_clips: int = 1000,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """What the judge hears in real clips of ``split``, in copies of them made by the
    checkpoint's phase method alone, in their reconstructions and in prior samples
    (``samples_per_label`` per label for a conditional model, as many without a label
    otherwise): all as audio, from ``synth.to_audio``.

    Diversity of samples is the mean pairwise distance of a label's samples (re-analysed
    from their audio) over that of its real clips (up to 200, any split): near 1 is as
    varied as real speech; near 0 is one clip said again and again.

    The distribution section compares each set as a whole with up to ``reference_clips``
    real training clips: Fréchet distance of the judge's embeddings (real val clips give
    the floor) and inception score of its probabilities, and beside them the fine structure
    of its audio (``vae.audio.metrics.fine_structure``) and its ratio to the real clips'.

    Returns:
        {"labels", "real", "phase_copies", "reconstructed", "samples" (None for an
        unconditional model), "distribution"}; the first four with accuracy, per_label and
        confusion, "samples" adding "diversity". "distribution": {"reference", and per set
        "real", "phase_copies", "reconstructed", "samples": {"frechet", "inception_score",
        "clips", "fine_structure_db": median/mean/p90, "fine_structure_vs_real"} or None;
        "reconstructed_vs_phase", "samples_vs_phase" (Fréchet ratios),
        "samples_is_vs_real"} or None when the training split is empty.
    """
    check_compatible(synth.checkpoint, ds.config, f"dataset {ds.root}")
    rate = _check_judge(synth, judge)
    names = judge.label_names
    index = {name: i for i, name in enumerate(names)}
    idx = np.array([i for i in ds.split_indices(split) if ds.labels[i] in index], np.int64)
    if not len(idx):
        raise ValueError(f"dataset {ds.root}: no clips in split {split!r} with the judge's labels")
    truth = np.array([index[ds.labels[i]] for i in idx])
    ref_rows = _reference_rows(ds, names, reference_clips, seed)
    # a conditional model is asked for each label; an unconditional one as often, unlabelled
    asked = [n if synth.conditional else None for n in names]
    total = len(ref_rows) + len(idx) + samples_per_label * len(asked)
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, total)

    reference = []
    for start in range(0, len(ref_rows), batch_size):
        rows = ref_rows[start : start + batch_size]
        reference.append(judge.embed(np.asarray(ds.waveforms[rows], np.float32), rate))
        tick(len(rows))
    heard: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {
        "real": [],
        "phase_copies": [],
        "reconstructed": [],
    }
    fine: dict[str, list[np.ndarray]] = {name: [] for name in (*heard, "samples")}
    for start in range(0, len(idx), batch_size):
        batch = idx[start : start + batch_size]
        feats = torch.from_numpy(np.asarray(ds.features[batch], dtype=np.float32))
        cond = [synth.label_index(ds.labels[i]) for i in batch] if synth.conditional else None
        audio = {
            "real": np.asarray(ds.waveforms[batch], np.float32),
            "phase_copies": synth.to_audio(feats),
            "reconstructed": synth.to_audio(synth.reconstruct(feats, cond)),
        }
        for name, waves in audio.items():
            heard[name].append(judge.listen(waves, rate))
            fine[name].append(waveform_fine_structure(waves, synth.config))
        tick(len(batch))
    joined = {name: _joined(parts) for name, parts in heard.items()}
    report: dict[str, Any] = {"labels": names}
    for name, (probs, _) in joined.items():
        report[name] = _scores(probs, truth, names)
    report["samples"], sampled = None, None
    if samples_per_label > 0:
        parts, said, diversity = [], [], {}
        for k, name in enumerate(asked):
            _, feats = synth.sample(samples_per_label, name, seed=seed + k)
            waves = synth.to_audio(feats)  # (n, clip_samples)
            parts.append(judge.listen(waves, rate))
            fine["samples"].append(waveform_fine_structure(waves, synth.config))
            if name is not None:
                said += [index[name]] * samples_per_label
                again = F.waveform_to_features(waves, synth.config).numpy()  # (n, bins, frames)
                mine = np.array([i for i, lab in enumerate(ds.labels) if lab == name])[:200]
                real = np.asarray(ds.features[np.sort(mine)], dtype=np.float32)
                spread = _spread(real) if len(real) > 1 else float("nan")
                diversity[name] = _spread(again) / spread if spread else float("nan")
            tick(samples_per_label)
        sampled = _joined(parts)
        if synth.conditional:
            samples = _scores(sampled[0], np.array(said), names)
            values = [v for v in diversity.values() if np.isfinite(v)]
            samples["diversity"] = {
                "mean": float(np.mean(values)) if values else float("nan"),
                "per_label": diversity,
            }
            samples["per_label_samples"] = samples_per_label
            report["samples"] = samples
    reference_emb = np.concatenate(reference) if reference else np.zeros((0, 1))
    report["distribution"] = _distribution(
        reference_emb,
        {**joined, "samples": sampled},
        {name: np.concatenate(parts) for name, parts in fine.items() if parts},
    )
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
    with different labels, the judge hears each step of the path as audio; a pair
    counts when P(B's label) never falls and P(A's label) never rises by more than
    ``tolerance`` from one step to the next.

    Returns:
        {"pairs", "steps", "monotonic_fraction", "mean_start_prob", "mean_end_prob"}
    """
    rate = _check_judge(synth, judge)
    names = judge.label_names
    idx = np.array([i for i in ds.split_indices(split) if ds.labels[i] in names], np.int64)
    rng = np.random.default_rng(seed)
    chosen: list[tuple[int, int]] = []
    for _ in range(pairs * 50):
        if len(chosen) == pairs or len(idx) < 2:
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
        probs = judge.probabilities(synth.to_audio(feats), rate)  # (steps, n_labels)
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


# ------------------------------------------------------------------------------ the table

REALISM_SETS = ("real", "phase_copies", "reconstructed", "samples")


def realism_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The table an evaluation leads with: per set of clips (real validation clips, their
    copies through the phase method, reconstructions, prior samples) how far it is from
    real clips as a whole and how sharp its spectrum is.

    The judge's distribution section gives both figures for the audio it heard; without a
    judge (or in a report older than a figure) the fine structure comes from
    ``evaluate_reconstruction``'s sections, and what neither has is None.

    Args:
        report: ``evaluate_reconstruction``'s dict, with ``evaluate_with_judge``'s under
            "judge" when there was one (as ``python -m vae evaluate --json`` prints).

    Returns:
        One row per set with any figure, in the order above: {"set", "clips", "frechet",
        "frechet_vs_phase", "inception_score", "fine_structure_db" (the mean),
        "fine_structure_vs_real"}.
    """
    dist = (report.get("judge") or {}).get("distribution") or {}
    copies = "vocoder_only" if report.get("phase") == "vocoder" else "griffin_lim_only"
    plain = {
        "real": report.get("real"),
        "phase_copies": report.get(copies),
        "reconstructed": report.get("model"),
        "samples": None,  # only the judge's run makes them
    }
    phase = (dist.get("phase_copies") or {}).get("frechet")
    rows = []
    for name in REALISM_SETS:
        judged, own = dist.get(name) or {}, plain[name] or {}
        fine = judged if "fine_structure_db" in judged else own
        row = {
            "set": name,
            "clips": judged.get("clips", report.get("clips")),
            "frechet": judged.get("frechet"),
            "frechet_vs_phase": ratio(judged.get("frechet"), phase),
            "inception_score": judged.get("inception_score"),
            "fine_structure_db": (fine.get("fine_structure_db") or {}).get("mean"),
            "fine_structure_vs_real": fine.get("fine_structure_vs_real"),
        }
        if row["frechet"] is not None or row["fine_structure_db"] is not None:
            rows.append(row)
    return rows
