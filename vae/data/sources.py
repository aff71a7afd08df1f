"""Where clips come from: audio files under a folder, label rules, and a synthetic demo set.

Labels come from one of :data:`LABEL_RULES`: ``fsdd`` reads ``{digit}_{speaker}_{i}.wav``
names, ``folder`` uses the first sub-folder under the root, ``none`` leaves clips
unlabelled, and ``auto`` picks the first that fits (:func:`resolve_label_rule`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vae.audio import io as audio
from vae.progress import Progress
from vae.storage.output_folder import DEMO_SET, check_output_folder

LABEL_RULES = ("auto", "fsdd", "folder", "none")
FSDD_PATTERN = re.compile(r"^(\d+)_([A-Za-z0-9-]+)_(\d+)\.\w+$")
# {anything}_{speaker}_{i}.ext inside a label folder (the demo set, FSDD sorted into folders)
SPEAKER_PATTERN = re.compile(r"^[^_]+_([A-Za-z0-9-]+)_\d+\.\w+$")
# {label}_{speaker}_{i}.ext: FSDD's names, and the demo set's files out of their folders
NAMED_PATTERN = re.compile(r"^([^_]+)_[A-Za-z0-9-]+_\d+\.\w+$")

DEMO_CLASSES = ("rising", "falling", "tone", "pulses", "noise")
# name -> (pitch multiplier, harmonic brightness): each "speaker" has its own register and timbre.
DEMO_SPEAKERS = {"ann": (1.25, 0.7), "bo": (1.0, 0.5), "cy": (0.8, 0.3)}
DEMO_MARKER = "Sound VAE Studio synthetic demo set"
DEMO_README = "README.txt"  # starts with DEMO_MARKER: a folder that may be regenerated


def find_audio_files(root: Path) -> list[Path]:
    """Every audio file under ``root`` (recursive, sorted by relative path); hidden files and
    folders skipped, symlinked folders not followed, symlinked files followed.

    A file counts as audio when its lower-case suffix is in ``audio.AUDIO_EXTENSIONS``.
    Walks with ``os.scandir`` and sorts on strings: with pathlib, listing 30,000 files took
    1.4 s, longer than reading a tenth of them.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder; point the source at a folder of audio files")
    found: list[tuple[str, str]] = []  # (relative POSIX path, full path)
    folders = [("", str(root))]
    while folders:
        rel, folder = folders.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    folders.append((f"{rel}{entry.name}/", entry.path))
                elif (
                    os.path.splitext(entry.name)[1].lower() in audio.AUDIO_EXTENSIONS
                    and entry.is_file()
                ):
                    found.append((rel + entry.name, entry.path))
    found.sort()
    return [Path(full) for _, full in found]


# The first bytes of every format that AUDIO_EXTENSIONS names: (offset, bytes) pairs, all
# of which must match. soundfile.info took about 2 s for FSDD's 3,000 files on a busy 2-core
# machine, reading 12 bytes of each 0.1 s; that tells a text file or an empty one named .wav
# from a clip.
SIGNATURES = (
    *(((0, riff), (8, b"WAVE")) for riff in (b"RIFF", b"RIFX", b"RF64", b"BW64")),
    ((0, b"fLaC"),),
    ((0, b"OggS"),),
    *(((0, b"FORM"), (8, kind)) for kind in (b"AIFF", b"AIFC")),
    ((0, b".snd"),),
    ((0, b"ID3"),),  # MP3 (or FLAC) behind an ID3 tag
)
HEAD_BYTES = 12


def looks_like_audio(path: Path) -> bool:
    """Whether a file's first bytes are an audio header (its content may still be damaged:
    preprocessing reads it whole and says why)."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError:
        return False
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # an MPEG frame
        return True
    return any(all(head[at : at + len(b)] == b for at, b in sig) for sig in SIGNATURES)


def sort_by_header(files: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """(files that look like audio, the others) by :func:`looks_like_audio`, in order."""
    audio_files: list[Path] = []
    others: list[Path] = []
    for path in files:
        (audio_files if looks_like_audio(path) else others).append(path)
    return audio_files, others


def holds_audio_files(root: Path, depth: int = 2) -> bool:
    """Whether ``root`` or its sub-folders down to ``depth`` levels hold a file named as
    audio: a cheap look (it stops at the first) for an error message's hint."""
    folders = [(Path(root), 0)]
    while folders:
        folder, level = folders.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if os.path.splitext(entry.name)[1].lower() in audio.AUDIO_EXTENSIONS:
                        return True
                    if level + 1 < depth and entry.is_dir(follow_symlinks=False):
                        folders.append((Path(entry.path), level + 1))
        except OSError:
            continue
    return False


def _check_rule(rule: str) -> None:
    if rule not in LABEL_RULES:
        raise ValueError(f"unknown label rule {rule!r}; choose one of {LABEL_RULES}")


def resolve_label_rule(files: Sequence[Path], root: Path, rule: str = "auto") -> str:
    """Turn ``auto`` into a concrete rule; any other rule is returned as given.

    ``auto`` is ``fsdd`` when every file name follows ``{digit}_{speaker}_{i}.ext``, else
    ``folder`` when every file lies in a sub-folder of ``root``, else ``none``.
    """
    _check_rule(rule)
    if rule != "auto":
        return rule
    names = [str(f) for f in files]
    if names and all(FSDD_PATTERN.match(os.path.basename(n)) for n in names):
        return "fsdd"
    prefix = len(str(root).rstrip(os.sep)) + 1
    if names and all(os.sep in n[prefix:] for n in names):
        return "folder"
    return "none"


def label_for(path: Path, root: Path, rule: str) -> tuple[str, str]:
    """(label, speaker) of one file under ``root`` by a concrete rule (not ``auto``).

    fsdd -> (digit, speaker); folder -> (first sub-folder name, the speaker when the name
    reads ``{anything}_{speaker}_{i}.ext``, else ""); none -> ("", "").
    Raises:
        ValueError: ``fsdd`` and the name does not follow ``{digit}_{speaker}_{i}.wav``.
    """
    _check_rule(rule)
    path = Path(path)
    if rule == "fsdd":
        match = FSDD_PATTERN.match(path.name)
        if not match:
            raise ValueError(
                f"{path.name}: name does not follow {{digit}}_{{speaker}}_{{i}}.wav; "
                "use --labels folder or --labels none"
            )
        return match.group(1), match.group(2)
    if rule == "folder":
        parts = path.relative_to(root).parts
        speaker = SPEAKER_PATTERN.match(path.name)
        return (parts[0] if len(parts) > 1 else ""), speaker.group(1) if speaker else ""
    if rule == "none":
        return "", ""
    raise ValueError("label rule 'auto' must be resolved first with resolve_label_rule")


def label_from_name(name: str, label_names: Sequence[str]) -> str | None:
    """The label a lone file's name gives, so an upload needs no folder to be labelled.

    ``{label}_{speaker}_{i}.ext`` (FSDD's ``3_george_1.wav``, the demo set's
    ``rising_bo_2.wav``) gives ``label`` when it is one of ``label_names``; any other name
    gives None.
    """
    match = NAMED_PATTERN.match(os.path.basename(name))
    if match and match.group(1) in label_names:
        return match.group(1)
    return None


# ---------------------------------------------------------------------------- demo set


def _harmonics(freq: np.ndarray, brightness: float, sample_rate: int) -> np.ndarray:
    """A harmonic tone following the instantaneous frequency ``freq`` (samples,) in Hz."""
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate  # (samples,)
    wave = np.zeros_like(freq)
    for k in range(1, 7):
        # Fade partials out as they near Nyquist: no aliasing, and no click where one stops.
        fade = np.clip((0.45 * sample_rate - k * freq) / (0.05 * sample_rate), 0.0, 1.0)
        wave += brightness ** (k - 1) * np.sin(k * phase) * fade
    return wave


def _band_noise(n: int, low: float, high: float, sample_rate: int, rng) -> np.ndarray:
    """White noise kept only between ``low`` and ``high`` Hz (an FFT mask)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    spec[(freqs < low) | (freqs > high)] = 0
    return np.fft.irfft(spec, n)


def _demo_clip(kind: str, speaker: str, sample_rate: int, rng) -> np.ndarray:
    """One synthetic clip (samples,) of class ``kind`` in the voice of ``speaker``."""
    pitch, bright = DEMO_SPEAKERS[speaker]
    sr = sample_rate
    seconds = rng.uniform(0.4, 0.9)
    t = np.arange(int(seconds * sr)) / sr  # (samples,)
    top = 0.4 * sr  # keep every fundamental well below Nyquist at any rate
    if kind == "rising":
        f0, ratio = rng.uniform(180, 300) * pitch, rng.uniform(2.2, 3.0)
        wave = _harmonics(np.minimum(f0 * ratio ** (t / seconds), top), bright, sr)
    elif kind == "falling":
        f0, ratio = rng.uniform(500, 800) * pitch, rng.uniform(2.2, 3.0)
        wave = _harmonics(np.minimum(f0 * ratio ** (-t / seconds), top), bright, sr)
    elif kind == "tone":
        f0 = rng.uniform(200, 500) * pitch
        wave = _harmonics(f0 * (1 + 0.01 * np.sin(2 * np.pi * 5 * t)), bright, sr)
    elif kind == "pulses":
        f0, rate = rng.uniform(300, 600) * pitch, rng.uniform(5, 9)
        gate = (np.mod(t * rate, 1.0) < 0.4).astype(float)
        gate = np.convolve(gate, np.hanning(int(0.01 * sr) + 1), mode="same")  # soften clicks
        wave = _harmonics(np.full_like(t, f0), bright, sr) * gate
    elif kind == "noise":
        centre = min(rng.uniform(1200, 2400) * pitch, 0.35 * sr)
        width = rng.uniform(400, 800)
        wave = _band_noise(len(t), centre - width / 2, centre + width / 2, sr, rng)
    else:
        raise ValueError(f"unknown demo class {kind!r}; choose one of {DEMO_CLASSES}")
    ramp = np.minimum(1.0, np.minimum(t / 0.015, (t[-1] - t) / 0.04))  # attack 15, release 40 ms
    wave = wave * ramp / max(np.abs(wave).max(), 1e-9)
    lead, tail = (int(rng.uniform(0, 0.15) * sr) for _ in range(2))
    wave = np.pad(wave * rng.uniform(0.3, 0.9), (lead, tail))
    return (wave + 3e-4 * rng.standard_normal(len(wave))).astype(np.float32)  # a faint floor


def _clear_previous_demo(out: Path) -> None:
    """Allow writing into ``out`` only if it is missing, empty or an earlier demo set (the
    rule of :func:`vae.storage.output_folder.check_output_folder`), and remove from an earlier demo
    set only the clips this function writes: a file of the user's in it is kept."""
    if not check_output_folder(out, DEMO_SET):
        return
    clip = re.compile(rf"^({'|'.join(DEMO_CLASSES)})_({'|'.join(DEMO_SPEAKERS)})_\d+\.wav$")
    for kind in DEMO_CLASSES:
        folder = out / kind
        if not folder.is_dir() or folder.is_symlink():
            continue
        for old in folder.iterdir():
            if clip.match(old.name) and old.name.startswith(f"{kind}_") and old.is_file():
                old.unlink()


def make_demo_set(
    out: Path,
    n_per_class: int = 40,
    sample_rate: int = 8000,
    seed: int = 0,
    progress: Progress | None = None,
) -> Path:
    """Write an offline synthetic labelled set: ``{class}/{class}_{speaker}_{i}.wav``.

    Five classes that look different in a spectrogram (rising and falling chirps, a steady
    tone, pulses, band-passed noise), three "speakers" of different pitch and timbre, random
    duration (0.4-0.9 s), padding and level. The same seed gives byte-identical files; the
    class sub-folders make the ``auto`` label rule resolve to ``folder``.

    Returns:
        ``out``, now holding len(DEMO_CLASSES) * n_per_class 16-bit mono WAVs and DEMO_README.
    """
    out = Path(out)
    if n_per_class < 1:
        raise ValueError(f"n_per_class={n_per_class} must be at least 1")
    if sample_rate < 4000:
        raise ValueError(f"sample_rate={sample_rate} must be at least 4000 Hz for the demo set")
    _clear_previous_demo(out)
    speakers = list(DEMO_SPEAKERS)
    total, done = len(DEMO_CLASSES) * n_per_class, 0
    for c, kind in enumerate(DEMO_CLASSES):
        for i in range(n_per_class):
            speaker = speakers[i % len(speakers)]
            rng = np.random.default_rng([seed, c, i])  # per clip: independent of n_per_class
            wave = _demo_clip(kind, speaker, sample_rate, rng)
            audio.write_wav(out / kind / f"{kind}_{speaker}_{i}.wav", wave, sample_rate, False)
            done += 1
            if progress is not None:
                progress(done, total)
    readme = out / f".{DEMO_README}.tmp"
    readme.write_text(
        f"{DEMO_MARKER} (seed {seed}, {n_per_class} clips per class, {sample_rate} Hz).\n"
        f"Classes (one sub-folder each): {', '.join(DEMO_CLASSES)}.\n"
        f"Speakers (pitch and timbre): {', '.join(speakers)}.\n"
        "Generated by vae.data.sources.make_demo_set; regenerate it rather than editing it.\n"
    )
    os.replace(readme, out / DEMO_README)
    return out
