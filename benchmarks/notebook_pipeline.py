"""The notebook's preprocessing, replicated with librosa: the baseline ours is timed against.

Valerio Velardo's "Sound generation with VAE" (``preprocess.py``) at its digits setting, which
is the project's ``seed`` preset: every file under SRC is loaded at 22,050 Hz for at most
0.74 s, right-padded with zeros, turned into a log spectrogram (n_fft 512, hop 256, the last
bin dropped: 256 x 64), min-max normalised to [0, 1] and saved as one ``.npy`` per file; each
file's original min and max go into one pickle at the end. Single process, as the notebook.

Run: ``.venv/bin/python benchmarks/notebook_pipeline.py SRC OUT`` (needs librosa, a
benchmark-only requirement: ``pip install -r benchmarks/requirements.txt``).
``benchmarks/preprocess_fsdd.py --notebook`` launches it beside ours.
"""

from __future__ import annotations

import os
import pickle
import sys
import time

import numpy as np

try:
    import librosa
except ImportError:
    sys.exit("librosa is missing: pip install -r benchmarks/requirements.txt")

SAMPLE_RATE, DURATION, N_FFT, HOP = 22050, 0.74, 512, 256


def load(path: str) -> np.ndarray:
    return librosa.load(path, sr=SAMPLE_RATE, duration=DURATION, mono=True)[0]


def pad_if_needed(signal: np.ndarray) -> np.ndarray:
    expected = int(SAMPLE_RATE * DURATION)
    if len(signal) < expected:
        signal = np.pad(signal, (0, expected - len(signal)), mode="constant")
    return signal


def log_spectrogram(signal: np.ndarray) -> np.ndarray:
    stft = librosa.stft(signal, n_fft=N_FFT, hop_length=HOP)[:-1]
    spectrogram = np.abs(stft)
    return librosa.amplitude_to_db(spectrogram)


def normalise(array: np.ndarray) -> np.ndarray:
    return (array - array.min()) / (array.max() - array.min())


def save_feature(feature: np.ndarray, path: str, out: str) -> str:
    save_path = os.path.join(out, os.path.split(path)[1] + ".npy")
    np.save(save_path, feature)
    return save_path


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.splitlines()[0], "\nusage: notebook_pipeline.py SRC OUT", file=sys.stderr)
        return 2
    src, out = argv
    started = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    min_max_values = {}
    count = 0
    for root, _, files in os.walk(src):
        for file in files:
            path = os.path.join(root, file)
            # A name unique per file: the corpus holds the same names in several sub-folders.
            name = os.path.relpath(path, src).replace(os.sep, "_")
            signal = pad_if_needed(load(path))
            feature = log_spectrogram(signal)
            norm_feature = normalise(feature)
            save_path = save_feature(norm_feature, name, out)
            min_max_values[save_path] = {"min": feature.min(), "max": feature.max()}
            count += 1
    with open(os.path.join(out, "min_max_values.pkl"), "wb") as f:
        pickle.dump(min_max_values, f)
    wall = time.perf_counter() - started
    print(f"notebook: {count} clips in {wall:.2f} s after imports")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
