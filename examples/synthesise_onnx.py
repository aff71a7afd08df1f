"""Play an exported Sound VAE model with numpy, soundfile and onnxruntime only (no torch).

Make an export first, then pick a point as the Synthesise page's sliders do:

    python -m vae export checkpoints/fsdd-digits --out out/export-fsdd-digits
    python examples/synthesise_onnx.py out/export-fsdd-digits --label 7 --amounts "1=2.0,3=-1" \\
        --out seven.wav

The code starts at the centre of the training clips' codes (or, with ``--seed``, at a random
draw from N(0, I)) and moves ``amount`` standard deviations along each main direction. The
decoder turns it into features; the features become sound through the export's vocoder when
it has one, else through a Griffin-Lim written here in numpy that follows torchaudio's step
for step (zero phase to start, the same momentum, the same STFT), so it sounds as the app
does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import soundfile as sf

FORMAT_VERSION = 1  # the export.json version this script reads
PEAK = 0.99  # written clips peak just under full scale, as the studio writes them


def load_export(folder: Path) -> dict:
    """export.json of an export folder, its version checked."""
    file = folder / "export.json"
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        sys.exit(f"error: {file}: not an export ({err}); run `python -m vae export CKPT --out DIR`")
    if manifest.get("format_version") != FORMAT_VERSION or manifest.get("format") != "onnx":
        sys.exit(f"error: {file}: not an ONNX export of format_version {FORMAT_VERSION}")
    return manifest


def session(folder: Path, manifest: dict, role: str) -> ort.InferenceSession:
    path = folder / manifest["files"][role]
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def parse_amounts(text: str, k: int) -> np.ndarray:
    """``"1=2.0,3=-1"`` (1-based direction = standard deviations) -> amounts (k,)."""
    amounts = np.zeros(k, np.float32)
    for part in filter(None, (p.strip() for p in text.split(","))):
        index, _, value = part.partition("=")
        try:
            i, amount = int(index), float(value)
        except ValueError:
            i, amount = 0, 0.0
        if not 1 <= i <= k:
            sys.exit(f"error: --amounts {part!r}: write DIRECTION=AMOUNT, DIRECTION in 1..{k}")
        amounts[i - 1] = amount
    return amounts


def code(manifest: dict, amounts: np.ndarray, seed: int | None = None) -> np.ndarray:
    """The code (latent_dim,) float32: the centre (or a seeded N(0, I) draw) moved
    ``amounts[k] * spread[k]`` along each main direction k."""
    axes = manifest["directions"]
    centre = np.asarray(axes["centre"], np.float32)
    directions = np.asarray(axes["directions"], np.float32).reshape(-1, len(centre))
    spread = np.asarray(axes["spread"], np.float32)
    if seed is not None:
        centre = np.random.default_rng(seed).standard_normal(len(centre)).astype(np.float32)
    return (centre + (amounts * spread) @ directions).astype(np.float32)


def label_index(manifest: dict, label: str | None) -> int | None:
    """Index of a label name (or index) for a conditional export; None otherwise."""
    names = manifest["label_names"]
    if not manifest["conditional"]:
        if label is not None:
            print(f"note: this model takes no label; --label {label} is ignored", file=sys.stderr)
        return None
    if label is None:
        sys.exit(f"error: this model is conditional on {names}; pass --label")
    if label in names:
        return names.index(label)
    if label.isdigit() and int(label) < len(names):
        return int(label)
    sys.exit(f"error: --label {label!r} is not one of {names}")


def decode(folder: Path, manifest: dict, z: np.ndarray, label: int | None) -> np.ndarray:
    """Codes (B, latent_dim) [and one label] -> features (B, bins, frames) in [0, 1]."""
    feeds = {"z": np.asarray(z, np.float32)}
    if label is not None:
        feeds["label"] = np.full(len(z), label, np.int64)
    return session(folder, manifest, "decoder").run(None, feeds)[0]


# ------------------------------------------------------------------------------ features to sound


def hann(n: int) -> np.ndarray:
    """The periodic Hann window, as torch.hann_window(n)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float64)


def features_to_magnitude(feats: np.ndarray, manifest: dict) -> np.ndarray:
    """Features (bins, frames) in [0, 1] -> linear STFT magnitude (n_fft // 2 + 1, frames)."""
    cfg = manifest["feature_config"]
    feats = np.clip(np.asarray(feats, np.float64), 0.0, 1.0)
    reference = hann(cfg["n_fft"]).sum() / 2  # a full-scale sine at a bin centre: 0 dB
    mag = reference * 10.0 ** ((feats - 1.0) * cfg["top_db"] / 20)
    mag = np.where(feats > 0, mag, 0.0)  # the floor is silence, not -top_db
    if cfg["n_mels"]:
        mag = np.maximum(np.asarray(manifest["mel_pinv"]) @ mag, 0.0)
    elif cfg["drop_last_bin"]:
        mag = np.concatenate([mag, np.zeros((1, mag.shape[1]))])  # the Nyquist bin
    return mag


def stft(wave: np.ndarray, n_fft: int, hop: int, window: np.ndarray) -> np.ndarray:
    """Centred STFT (reflect padding) -> (n_fft // 2 + 1, frames), as torch.stft."""
    padded = np.pad(wave, n_fft // 2, mode="reflect")
    frames = 1 + (len(padded) - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]  # (frames, n_fft)
    return np.fft.rfft(padded[index] * window, axis=1).T


def istft(spec: np.ndarray, n_fft: int, hop: int, window: np.ndarray, length: int) -> np.ndarray:
    """Inverse of :func:`stft`: overlap-add divided by the summed squared window, the
    centre padding cut off, ``length`` samples, as torch.istft(center=True)."""
    frames = np.fft.irfft(spec, n=n_fft, axis=0) * window[:, None]  # (n_fft, frames)
    total = n_fft + hop * (spec.shape[1] - 1)
    out, envelope = np.zeros(total), np.zeros(total)
    for t in range(spec.shape[1]):
        out[t * hop : t * hop + n_fft] += frames[:, t]
        envelope[t * hop : t * hop + n_fft] += window**2
    start = n_fft // 2
    out = np.pad(out, (0, max(0, start + length - total)))[start : start + length]
    envelope = np.pad(envelope, (0, max(0, start + length - total)))[start : start + length]
    return out / np.where(envelope > 1e-11, envelope, 1.0)


def griffin_lim(mag: np.ndarray, phase: dict) -> np.ndarray:
    """Fast Griffin-Lim of a magnitude (n_fft // 2 + 1, frames) -> audio (length,),
    torchaudio.functional.griffinlim's update with rand_init=False."""
    n_fft, hop, length = phase["n_fft"], phase["hop_length"], phase["length"]
    window, momentum = hann(n_fft), phase["momentum"]
    angles = np.ones(mag.shape, np.complex128)  # zero phase: the same sound every time
    previous = np.zeros((), np.complex128)
    for _ in range(phase["n_iter"]):
        rebuilt = stft(istft(mag * angles, n_fft, hop, window, length), n_fft, hop, window)
        angles = rebuilt - previous * (momentum / (1 + momentum))
        angles = angles / (np.abs(angles) + 1e-16)
        previous = rebuilt
    return istft(mag * angles, n_fft, hop, window, length)


def to_audio(folder: Path, manifest: dict, feats: np.ndarray, use_vocoder: bool) -> np.ndarray:
    """Features (bins, frames) -> audio (clip_samples,) float32."""
    if use_vocoder and manifest["phase"]["method"] == "vocoder":
        wave = session(folder, manifest, "vocoder").run(None, {"features": feats[None]})[0][0]
        return wave.astype(np.float32)
    return griffin_lim(features_to_magnitude(feats, manifest), manifest["phase"]).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("export", type=Path, help="export folder (python -m vae export)")
    p.add_argument("--out", type=Path, required=True, help="WAV file to write")
    p.add_argument("--label", help="label name or index (conditional models)")
    p.add_argument("--amounts", default="", help="DIRECTION=SD,... e.g. 1=2.0,3=-1")
    p.add_argument("--seed", type=int, help="start from a random N(0, I) code, not the centre")
    p.add_argument("--griffin-lim", action="store_true", help="ignore the export's vocoder")
    p.add_argument("--features-out", type=Path, help="also save the features as .npy")
    args = p.parse_args(argv)

    manifest = load_export(args.export)
    k = len(manifest["directions"]["spread"])
    z = code(manifest, parse_amounts(args.amounts, k), args.seed)
    label = label_index(manifest, args.label)
    feats = decode(args.export, manifest, z[None], label)[0]  # (bins, frames)
    if args.features_out:
        np.save(args.features_out, feats)
    wave = to_audio(args.export, manifest, feats, not args.griffin_lim)
    wave = wave * (PEAK / max(float(np.abs(wave).max()), 1e-12))
    rate = manifest["feature_config"]["sample_rate"]
    sf.write(str(args.out), np.clip(wave, -1, 1), rate, subtype="PCM_16")
    print(
        f"wrote {args.out}: {len(wave) / rate:.2f} s at {rate} Hz from code "
        + ", ".join(f"{v:+.2f}" for v in z)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
