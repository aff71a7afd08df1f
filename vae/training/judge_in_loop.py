"""The judge in the training loop: score the checkpoint just saved every N epochs, keep the
best epoch in ``best/`` and say when the score has stopped improving.

After epoch e (a multiple of ``judge_every``, and the last epoch) rank 0 loads the checkpoint
folder as a :class:`~vae.synthesis.inference.Synthesiser` and the judge (``vae.evaluation.judge``)
hears, through
the checkpoint's own ``to_audio``:

- reconstructions of up to ``RECON_CLIPS`` val clips, as many of each label as there are
  (the same clips every time);
- ``SAMPLES_PER_LABEL`` prior samples of each label with fixed seeds (an unconditional model:
  that many times the number of labels, one seed), so that epochs are compared on equal terms.

It reports the judge's accuracy on each set (reconstructions need labelled clips, samples a
conditional model; otherwise None) and each set's Fréchet distance
(``vae.evaluation.distribution``) to
the embeddings of up to ``REFERENCE_CLIPS`` train clips, computed once per run. The **score**
is the samples' Fréchet distance, lower is better: a figure over the whole set, which rises
with wrong labels, blur and samples that all sound alike.

Each scoring appends a "judge" line to metrics.jsonl. When the score improves, the checkpoint's
files are copied into ``best/`` (a complete folder that ``Synthesiser.load`` opens), built
beside it and swapped into place; the checkpoint folder itself stays the last epoch, and
resumable. ``stale`` counts the scorings since the best one; at ``judge_patience`` a note says
that stopping loses nothing (and with ``stop_when_stale`` training stops there).
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vae.data.dataset import SpectrogramSet
from vae.evaluation.distribution import embedding_stats, frechet_distance_from_stats
from vae.evaluation.judge import Judge
from vae.model import checkpoints as ck
from vae.model.prior import PRIOR_FILE
from vae.progress import OnEvent
from vae.storage.files import swap_into_place, temp_beside, tidy_leftovers
from vae.synthesis.inference import Synthesiser
from vae.training.train_config import TrainConfig

BEST_DIR = ck.BEST_DIR
BEST_FILES = (ck.WEIGHTS_FILE, ck.CONFIG_FILE, ck.LATENTS_FILE, PRIOR_FILE)
SAMPLES_PER_LABEL = 20
RECON_CLIPS = 200
REFERENCE_CLIPS = 1000
SAMPLE_SEED = 1234
BATCH = 32  # clips decoded and turned into audio at a time (bounds Griffin-Lim's memory)
# Scoring is many small operations (Griffin-Lim iterations over 32 clips, a small CNN), where
# more threads mostly wait on each other: on FSDD (2 busy cores) one pass took 10.7 s of CPU
# on one thread and 43-60 s on two.
JUDGE_THREADS = 1
SCORE_KEY = "samples_frechet"


def load_judge_for(path: str | Path, ds: SpectrogramSet) -> Judge:
    """The judge folder ``path``, checked to hear ``ds``: its sample rate, and its labels
    (an unlabelled dataset passes on its rate alone).

    Raises:
        ValueError: no usable judge there, or one made for other audio; the message names
            the folder and the fix.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(
            f"--judge {path}: no such folder; train a judge with "
            f"`python -m vae judge {ds.root} --out {path}`"
        )
    judge = Judge.load(path)
    judge.check_compatible(ds.config.sample_rate, ds.label_names, f"dataset {ds.root}")
    return judge


def _accuracy(probs: np.ndarray, truth: np.ndarray) -> float:
    """Share of clips whose most probable label (probs (n, K)) is ``truth`` (n,)."""
    return float((probs.argmax(axis=1) == truth).mean())


def _in_batches(fn: Callable[[int, int], np.ndarray], n: int) -> np.ndarray:
    """np.concatenate of fn(start, stop) over consecutive slices of BATCH of range(n)."""
    return np.concatenate([fn(i, min(i + BATCH, n)) for i in range(0, n, BATCH)])


class Judging:
    """The judge's scorings of one training run (rank 0): what to hear, the reference
    embedding statistics (computed on first use), and the best epoch so far.

    Args:
        judge: a judge checked against ``ds`` (see :func:`load_judge_for`).
        out: the checkpoint folder training writes.
        patience: scorings without improvement before the note (and ``stop_when_stale``).
    """

    def __init__(
        self,
        judge: Judge,
        ds: SpectrogramSet,
        out: Path,
        patience: int = 3,
        stop_when_stale: bool = False,
        emit: OnEvent | None = None,
    ) -> None:
        self.judge, self.ds, self.out = judge, ds, Path(out)
        self.patience, self.stop_when_stale = patience, stop_when_stale
        self.emit = emit or (lambda event: None)
        names = {name: i for i, name in enumerate(judge.label_names)}
        # Dataset label index -> the judge's index; the last entry answers index -1 (an
        # unlabelled clip) with -1, as it does a label the judge does not know.
        self.to_judge = np.array([names.get(n, -1) for n in ds.label_names] + [-1], np.int64)
        rows = ds.showcase(RECON_CLIPS, "val")
        rows = rows if len(rows) >= 2 else ds.showcase(RECON_CLIPS, "all")  # a covariance
        self.rows = np.sort(rows)  # (n,) the clips reconstructed, in file order
        self.reference: tuple[np.ndarray, np.ndarray] | None = None  # train clips' (mu, sigma)
        self.real: dict[str, float | None] = {}
        self.best_epoch: int | None = None
        self.best_score = math.inf
        self.stale = 0

    @classmethod
    def start(cls, cfg: TrainConfig, ds: SpectrogramSet, out: Path, emit: OnEvent) -> Judging:
        """Open the judge of ``cfg`` for a run into ``out``, picking up the best epoch and the
        stale count from the judge lines a resumed run left (already trimmed to the
        checkpoint), and making ``best/`` agree with them."""
        assert cfg.judge is not None  # TrainConfig refuses judge_every without a judge
        judge = load_judge_for(cfg.judge, ds)
        judging = cls(judge, ds, out, cfg.judge_patience, cfg.stop_when_stale, emit)
        judging.recover()
        return judging

    # ------------------------------------------------------------------ resume

    def recover(self) -> None:
        """Best epoch, best score and stale count from metrics.jsonl's judge lines."""
        best = self.out / BEST_DIR
        tidy_leftovers(best, ck.CONFIG_FILE)  # a swap cut short by a kill
        lines = [r for r in ck.read_metrics(self.out) if r.get("event") == "judge"]
        for line in lines:
            score = line.get("score")
            improved = isinstance(score, int | float) and score < self.best_score
            if improved:
                self.best_epoch, self.best_score = int(line["epoch"]), float(score)
            self.stale = 0 if improved else self.stale + 1
        held = _epoch_of(best)
        if self.best_epoch is None or held == self.best_epoch:
            if self.best_epoch is None and held is not None:  # from a run whose lines are gone
                shutil.rmtree(best, ignore_errors=True)
            return
        # Killed between the judge line and the copy: the folder still holds that epoch.
        if _epoch_of(self.out) == self.best_epoch:
            copy_best(self.out)
        else:
            kept = f"epoch {held}" if held is not None else "nothing"
            note = (f"{best} holds {kept}, not the judge's best epoch {self.best_epoch}; "
                    "it is replaced at the next improvement")  # fmt: skip
            self.emit({"event": "note", "message": note})

    # ------------------------------------------------------------------ scoring

    def _hear(self, waves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The judge's label probabilities (n, K) and embeddings (n, C) of waves (n, samples)."""
        rate = self.ds.config.sample_rate
        return self.judge.listen(waves, rate)  # one pass gives both

    def _reference(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean (C,) and covariance (C, C) of up to REFERENCE_CLIPS train clips' embeddings;
        also the floor: the judge on the real clips that are reconstructed."""
        if self.reference is None:
            rows = np.sort(self.ds.showcase(REFERENCE_CLIPS, "train"))
            waves = np.asarray(self.ds.waveforms[rows], dtype=np.float32)
            self.reference = embedding_stats(self.judge.embed(waves, self.ds.config.sample_rate))
            probs, emb = self._hear(np.asarray(self.ds.waveforms[self.rows], dtype=np.float32))
            self.real = {
                "real_accuracy": self._recon_accuracy(probs),
                "real_frechet": self._frechet(emb),
            }
        return self.reference

    def _frechet(self, embeddings: np.ndarray) -> float:
        return frechet_distance_from_stats(*embedding_stats(embeddings), *self._reference())

    def _recon_accuracy(self, probs: np.ndarray) -> float | None:
        truth = self.to_judge[self.ds.label_indices[self.rows]]  # (n,) -1: unlabelled
        known = truth >= 0
        return _accuracy(probs[known], truth[known]) if known.any() else None

    def score(self, folder: str | Path) -> dict[str, Any]:
        """Score the checkpoint in ``folder``: {"samples_accuracy", "reconstructed_accuracy",
        "samples_frechet", "reconstructed_frechet", "real_accuracy", "real_frechet",
        "samples", "reconstructions"} (accuracies in [0, 1] or None, distances >= 0).

        Runs on JUDGE_THREADS CPU threads, whatever training uses."""
        threads = torch.get_num_threads()
        torch.set_num_threads(JUDGE_THREADS)
        try:
            return self._score(folder)
        finally:
            torch.set_num_threads(threads)

    def _score(self, folder: str | Path) -> dict[str, Any]:
        synth = Synthesiser.load(folder)
        self._reference()
        rows, ds = self.rows, self.ds

        def reconstruct(a: int, b: int) -> np.ndarray:
            feats = torch.from_numpy(np.asarray(ds.features[rows[a:b]], dtype=np.float32))
            labels = ds.label_indices[rows[a:b]].tolist() if synth.conditional else None
            return synth.to_audio(synth.reconstruct(feats, labels))  # (b - a, samples)

        probs, emb = self._hear(_in_batches(reconstruct, len(rows)))
        result: dict[str, Any] = {
            "reconstructed_accuracy": self._recon_accuracy(probs),
            "reconstructed_frechet": self._frechet(emb),
        }
        waves, truth = self._samples(synth)
        probs, emb = self._hear(waves)
        result["samples_accuracy"] = _accuracy(probs, truth) if truth is not None else None
        result["samples_frechet"] = self._frechet(emb)
        result.update(self.real, samples=len(waves), reconstructions=len(rows))
        return result

    def _samples(self, synth: Synthesiser) -> tuple[np.ndarray, np.ndarray | None]:
        """Prior samples through audio (n, samples) and, for a conditional model, the judge's
        index of the label each was asked for (n,)."""
        truth = None
        if synth.conditional:
            parts = [
                synth.sample(SAMPLES_PER_LABEL, name, seed=SAMPLE_SEED + k)[1]
                for k, name in enumerate(synth.label_names)
            ]  # (SAMPLES_PER_LABEL, bins, frames) each
            feats = torch.cat(parts)
            truth = np.repeat([self.judge.label_names.index(n) for n in synth.label_names],
                              SAMPLES_PER_LABEL)  # fmt: skip
        else:
            n = SAMPLES_PER_LABEL * len(self.judge.label_names)
            feats = synth.sample(n, seed=SAMPLE_SEED)[1]  # (n, bins, frames)
        return _in_batches(lambda a, b: synth.to_audio(feats[a:b]), len(feats)), truth

    # ------------------------------------------------------------------ after an epoch

    def after_epoch(self, epoch: int) -> bool:
        """Score the checkpoint of ``epoch`` (just saved in the folder), keep it in best/ when
        it improves, append the judge line and emit it; True when training should stop
        (``stop_when_stale`` and ``patience`` scorings without improvement)."""
        try:
            result = self.score(self.out)
        except (ValueError, OSError, RuntimeError) as err:  # the run is worth more than a score
            self.emit({"event": "note", "message": f"judging epoch {epoch} failed: {err}"})
            return False
        score = result[SCORE_KEY]
        improved = math.isfinite(score) and score < self.best_score
        if improved:
            copy_best(self.out)  # before the line: a line never names a best/ not yet there
            self.best_epoch, self.best_score, self.stale = epoch, score, 0
        else:
            self.stale += 1
        line = {"event": "judge", "epoch": epoch, **result, "score": score}
        line.update(best_epoch=self.best_epoch, best_score=_finite(self.best_score))
        line.update(improved=improved, stale=self.stale, patience=self.patience)
        line["time"] = ck.utc_now()
        ck.append_jsonl(self.out / ck.METRICS_FILE, line)
        self.emit(line)
        if self.stale == self.patience:
            self.emit({"event": "note", "message": stale_message(line, self.out)})
        return self.stop_when_stale and self.stale >= self.patience


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def stale_message(line: dict[str, Any], out: str | Path) -> str:
    """What to tell a user when a judge line's ``stale`` has reached its ``patience``."""
    best = line.get("best_epoch")
    return (
        f"the judge's score has not improved for {line['stale']} evaluations since epoch "
        f"{best}: stopping now loses nothing; {Path(out) / BEST_DIR} holds epoch {best}"
    )


def _epoch_of(folder: Path) -> int | None:
    """The epoch of the checkpoint in ``folder`` by its config.json, or None."""
    try:
        return int(ck.read_config(folder)["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def copy_best(out: str | Path) -> Path:
    """Copy the checkpoint files of ``out`` into ``out/best``: built in a hidden folder
    beside it, each file fsynced, then swapped into place. Returns ``out/best``."""
    out = Path(out)
    best = out / BEST_DIR
    tmp = temp_beside(best)
    tmp.mkdir()
    try:
        for name in BEST_FILES:
            if (out / name).is_file():
                shutil.copy2(out / name, tmp / name)
                with (tmp / name).open("rb") as f:
                    os.fsync(f.fileno())
        swap_into_place(tmp, best)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return best
