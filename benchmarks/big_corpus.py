"""Preprocess generated corpora far larger than one batch and print the memory it takes.

Run: ``.venv/bin/python benchmarks/big_corpus.py [--corpus clips music] [--keep DIR]``.

(a) ``clips``: 30,000 distinct one-second 8 kHz WAVs (tones, chirps and noise, ten label
    folders), preprocessed with ``--preset fsdd`` (forked worker processes).
(b) ``music``: 240 tracks of 30 s at 22,050 Hz in eight genre folders (2 hours), preprocessed
    with ``--preset music`` (consecutive segments; reader threads).
(c) ``long`` (not run by default): one 59-minute track, the longest a chunks-mode reader
    takes (``audio.MAX_SECONDS``): what one file costs, since each is read whole.

Each ``python -m vae preprocess`` runs as a subprocess while a sampler reads /proc every
50 ms for the whole process tree. It reports four figures, which differ on purpose:
``main RSS`` (the CLI process alone), ``largest worker RSS``, ``tree RSS`` (the sum over the
tree: pages that forked workers share with the main process count once per process) and
``tree PSS`` (the sum of proportional set sizes from /proc/PID/smaps_rollup: each shared page
split between its sharers, i.e. the memory the run really occupies).
Everything is written under a temporary folder that is removed, unless ``--keep DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MIB = 2**20
GENRES = ("ambient", "blues", "chiptune", "drone", "folk", "house", "jazz", "rock")


# ------------------------------------------------------------------------------ corpora


def wav_bytes(wave: np.ndarray, rate: int) -> bytes:
    """A mono 16-bit WAV of ``wave`` (samples,) in [-1, 1]: header and samples, no library."""
    data = (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()
    header = b"RIFF" + (36 + len(data)).to_bytes(4, "little") + b"WAVEfmt "
    header += (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
    header += rate.to_bytes(4, "little") + (2 * rate).to_bytes(4, "little")
    header += (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    return header + b"data" + len(data).to_bytes(4, "little") + data


def short_clips(batch: int, label: int, rng: np.random.Generator, rate: int = 8000) -> np.ndarray:
    """``batch`` distinct one-second clips (batch, rate) of one label's kind of sound: a
    harmonic tone, a chirp or band noise, each with its own pitch, envelope and noise."""
    t = np.arange(rate) / rate  # (rate,)
    f0 = 110 * 2 ** (label / 3) * rng.uniform(0.9, 1.1, (batch, 1))  # (batch, 1)
    kind = label % 3
    if kind == 0:  # tone with label-dependent harmonics
        wave = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 2 + label // 3))
    elif kind == 1:  # chirp up by an octave
        wave = np.sin(2 * np.pi * f0 * (t + t**2 / 2))
    else:  # noise, low-passed harder for higher labels
        noise = rng.standard_normal((batch, rate))
        kernel = np.ones(1 + label) / (1 + label)
        wave = np.apply_along_axis(np.convolve, 1, noise, kernel, "same")
    onset = rng.uniform(0.0, 0.3, (batch, 1))
    length = rng.uniform(0.3, 0.7, (batch, 1))
    env = np.clip((t - onset) / 0.02, 0, 1) * np.exp(-np.maximum(t - onset, 0) / length)
    wave = wave * env + 0.01 * rng.standard_normal((batch, rate))
    return (0.8 * wave / np.abs(wave).max(axis=1, keepdims=True)).astype(np.float32)


def make_clips(root: Path, n: int = 30_000, labels: int = 10, seed: int = 0) -> int:
    """Write ``n`` clips as ``root/{label}/{label}_synth{s}_{i}.wav``; returns the count."""
    rng = np.random.default_rng(seed)
    per_label = n // labels
    for label in range(labels):
        folder = root / str(label)
        folder.mkdir(parents=True)
        for first in range(0, per_label, 500):
            waves = short_clips(min(500, per_label - first), label, rng)
            for k, wave in enumerate(waves):
                i = first + k
                (folder / f"{label}_synth{i % 6}_{i}.wav").write_bytes(wav_bytes(wave, 8000))
    return per_label * labels


def music_track(genre: int, rng: np.random.Generator, seconds: float, rate: int) -> np.ndarray:
    """A music-like track (samples,): a melody and a bass line of decaying harmonic notes on
    a genre's scale, tempo and timbre, with noise-burst drums in half the genres."""
    n = int(seconds * rate)
    out = np.zeros(n, np.float32)
    beat = int(rate * 60 / (70 + 12 * genre))  # samples per beat
    scale = np.array([0, 2, 4, 5, 7, 9, 11]) if genre % 2 else np.array([0, 3, 5, 7, 10])
    root_hz = 110 * 2 ** (genre / 8) * rng.uniform(0.95, 1.05)
    harmonics = 1 + genre % 4 * 2
    t = np.arange(2 * beat) / rate
    for start in range(0, n, beat):
        for octave, gain in ((2, 0.5), (0, 0.35)):  # melody, bass
            step = scale[rng.integers(len(scale))] + 12 * octave
            f = root_hz * 2 ** (step / 12)
            note = sum(np.sin(2 * np.pi * h * f * t) / h**1.5 for h in range(1, harmonics + 1))
            note *= gain * np.exp(-t * (3 + genre))
            end = min(n, start + len(t))
            out[start:end] += note[: end - start]
        if genre >= 4:  # drums: a noise burst on every beat
            burst = rng.standard_normal(beat // 4) * np.exp(-np.arange(beat // 4) / (beat / 32))
            end = min(n, start + len(burst))
            out[start:end] += 0.4 * burst[: end - start]
    return out / np.abs(out).max() * 0.8


def make_music(root: Path, tracks: int = 240, seconds: float = 30.0, seed: int = 0) -> float:
    """Write ``tracks`` tracks as ``root/{genre}/track{i:02d}.wav`` at 22,050 Hz; returns
    the total duration in seconds."""
    rng = np.random.default_rng(seed)
    for i in range(tracks):
        genre = i % len(GENRES)
        folder = root / GENRES[genre]
        folder.mkdir(parents=True, exist_ok=True)
        wave = music_track(genre, rng, seconds, 22050)
        (folder / f"track{i // len(GENRES):02d}.wav").write_bytes(wav_bytes(wave, 22050))
    return tracks * seconds


# ------------------------------------------------------------------------------ memory


def _children(pid: int) -> list[int]:
    """Child pids of ``pid`` over all its threads (/proc/PID/task/TID/children)."""
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids.extend(int(k) for k in f.read().split())
    except OSError:
        pass  # it just ended
    return kids


def _kib(path: str, key: str) -> int:
    """The ``key:`` line of a /proc file in KiB; 0 when the process has ended."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Peaks:
    """Peak memory of a process tree, in KiB, over every sample."""

    main_rss: int = 0
    worker_rss: int = 0
    tree_rss: int = 0
    tree_pss: int = 0
    samples: int = 0
    most_processes: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def sample(self, root: int) -> None:
        tree, queue = [], [root]
        while queue:
            pid = queue.pop()
            tree.append(pid)
            queue.extend(_children(pid))
        rss = {pid: _kib(f"/proc/{pid}/status", "VmRSS:") for pid in tree}
        pss = sum(_kib(f"/proc/{pid}/smaps_rollup", "Pss:") for pid in tree)
        self.main_rss = max(self.main_rss, rss[root])
        workers = [v for pid, v in rss.items() if pid != root]
        self.worker_rss = max(self.worker_rss, max(workers, default=0))
        self.tree_rss = max(self.tree_rss, sum(rss.values()))
        self.tree_pss = max(self.tree_pss, pss)
        self.samples += 1
        self.most_processes = max(self.most_processes, len(tree))

    def follow(self, root: int, every: float = 0.05) -> threading.Thread:
        def loop() -> None:
            while not self.stop.is_set():
                self.sample(root)
                self.stop.wait(every)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread


def run_measured(cmd: list[str], log: Path) -> tuple[float, Peaks, int]:
    """Run ``cmd`` from the repository root, sampling its tree; (wall s, peaks, exit code)."""
    peaks = Peaks()
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        thread = peaks.follow(proc.pid)
        code = proc.wait()
    wall = time.perf_counter() - started
    peaks.stop.set()
    thread.join()
    return wall, peaks, code


def report(name: str, wall: float, peaks: Peaks, kept: int, unit: str) -> dict:
    """Print and return one run's figures (MiB)."""
    figures = {
        "corpus": name,
        "kept": kept,
        "wall_s": round(wall, 2),
        f"{unit}_per_s": round(kept / wall, 1),
        "main_rss_mib": round(peaks.main_rss / 1024),
        "largest_worker_rss_mib": round(peaks.worker_rss / 1024),
        "tree_rss_mib": round(peaks.tree_rss / 1024),
        "tree_pss_mib": round(peaks.tree_pss / 1024),
        "processes": peaks.most_processes,
        "samples": peaks.samples,
    }
    print(
        f"{name}: {kept} {unit} in {wall:.1f} s ({kept / wall:,.0f} {unit}/s); peak main RSS "
        f"{figures['main_rss_mib']} MiB, largest worker RSS "
        f"{figures['largest_worker_rss_mib']} MiB, tree RSS {figures['tree_rss_mib']} MiB, "
        f"tree PSS {figures['tree_pss_mib']} MiB ({peaks.most_processes} processes, "
        f"{peaks.samples} samples)",
        flush=True,
    )
    return figures


def preprocess(name: str, src: Path, out: Path, preset: str, unit: str) -> dict:
    """``python -m vae preprocess`` on ``src`` under the memory sampler."""
    cmd = [sys.executable, "-m", "vae", "preprocess", str(src), "--out", str(out)]
    wall, peaks, code = run_measured([*cmd, "--preset", preset], out.with_suffix(".log"))
    if code != 0:
        raise SystemExit(f"{name}: preprocess failed; see {out.with_suffix('.log')}")
    kept = json.loads((out / "config.json").read_text())["counts"]["kept"]
    return report(name, wall, peaks, kept, unit)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus", nargs="+", choices=["clips", "music", "long"], default=["clips", "music"]
    )
    parser.add_argument("--clips", type=int, default=30_000, help="clips in corpus (a)")
    parser.add_argument("--tracks", type=int, default=240, help="30 s tracks in corpus (b)")
    parser.add_argument("--keep", type=Path, help="write here and keep corpora and datasets")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="big-corpus-"))
    results = []
    try:
        if "clips" in args.corpus:
            started = time.perf_counter()
            n = make_clips(root / "clips", args.clips)
            print(f"generated {n} clips in {time.perf_counter() - started:.1f} s", flush=True)
            results.append(preprocess("clips", root / "clips", root / "clips-ds", "fsdd", "clips"))
        if "music" in args.corpus:
            started = time.perf_counter()
            seconds = make_music(root / "music", args.tracks)
            took = time.perf_counter() - started
            print(f"generated {seconds / 3600:.2f} h of music in {took:.1f} s", flush=True)
            results.append(
                preprocess("music", root / "music", root / "music-ds", "music", "segments")
            )
        if "long" in args.corpus:
            make_music(root / "long", 1, seconds=59 * 60.0)
            results.append(preprocess("long", root / "long", root / "long-ds", "music", "segments"))
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
