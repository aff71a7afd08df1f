"""Sane limits for every size read from a file we did not necessarily write, checked before
anything is allocated, and the ``.npy`` header reader that lets arrays be checked unread.

A checkpoint, dataset, judge or vocoder folder may come from elsewhere: a config of
``n_fft`` 2**30 or a million label names, or a 0.5 MB ``latents.npz`` declaring 512 MiB of
zeros, would otherwise allocate gigabytes before any check ran. Every field that sizes an
allocation is bounded here, so one request (load a checkpoint, decode one code, Griffin-Lim
on it, read its latents and prior) stays under :data:`MEMORY_CEILING`, 3 GiB of resident
memory for the whole process. The largest parts, each at its limit:

- the interpreter, torch and numpy: about 0.35 GiB before any file is read;
- ``model.pt`` held as loaded: at most 16 bytes a parameter + 16 MiB (written: about 12, the
  weights and Adam's two moments), capped at :data:`MAX_WEIGHTS_BYTES` (1 GiB); the model
  itself at most :data:`MAX_PARAMETERS` (64 M floats, 256 MiB), counted before it is built;
- decoding: feature maps of at most :data:`MAX_ACTIVATION` (4 M floats, 16 MiB) a channel
  stack, a transposed convolution's column buffer 16x one of them;
- Griffin-Lim: a spectrogram of at most :data:`MAX_FEATURE_CELLS` (4 M bins x frames,
  32 MiB complex), a few copies of it, and the framed signal (frames x n_fft <= 2 x cells);
- latents and a prior: at most :data:`MAX_ARRAY_BYTES` (64 MiB) declared in each ``.npz``;
- JSON: at most ``vae.storage.files.JSON_MAX_BYTES`` (4 MiB) a file, parsed into under 100 MiB.

Measured (peak resident memory of the CLI process): ``sample --n 1`` and ``decode`` of a
checkpoint at every limit at once (4096-point FFT, 2048 x 2047 features, 59 M parameters, a
0.97 GB ``model.pt``, 700 k latents) 2.15 GiB; the shipped fsdd-digits ``decode`` 0.64 GiB;
each red-team file refused at about 0.6 GiB, the imports' own
(``tests/integration/test_untrusted_checkpoints.py``).
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from vae.options import excesses

MEMORY_CEILING = 3 << 30  # bytes of resident memory one request may take, process included

# Feature configs (vae.audio.features.FeatureConfig).
MAX_SAMPLE_RATE = 192_000
MAX_N_FFT = 1 << 15
MAX_CLIP_SAMPLES = 1 << 22  # 95 s at 44.1 kHz
MAX_N_MELS = 1024
MAX_TOP_DB = 200.0
MAX_GRIFFIN_LIM_ITERS = 1000
MAX_FEATURE_CELLS = 1 << 22  # STFT bins x frames of one clip

# Model configs (vae.model.conv_vae.ModelConfig).
MAX_LATENT_DIM = 1024
MAX_CHANNELS = 1024
MAX_LABELS = 10_000
MAX_LABEL_DIM = 1024
MAX_PARAMETERS = 1 << 26  # 256 MiB of float32; the music preset at size large has 42 M
MAX_ACTIVATION = 1 << 22  # floats of the largest feature map for one clip
MAX_WEIGHTS_BYTES = 1 << 30

# Arrays (latents.npz, prior.npz, features.npy, waveforms.npy).
MAX_CLIPS = 1 << 20
MAX_ARRAY_BYTES = 64 << 20  # all arrays of one .npz: 500 k clips of a 16-d code, ids and labels
MAX_NPZ_MEMBERS = 3 * MAX_LABELS + 2  # a prior: three arrays per label, version, labels
MAX_COMPRESSION = 100  # a member's declared size over its stored size; np.savez stores (1x)


def max_weights_bytes(n_parameters: int) -> int:
    """The most bytes a weights file of a model of ``n_parameters`` may hold: the model, the
    optimizer's two moments and a spare copy in float32 (about 12 bytes a parameter are
    written), and 16 MiB for the rest."""
    return min(MAX_WEIGHTS_BYTES, 16 * n_parameters + (16 << 20))


class LimitError(ValueError):
    """A size read from a file is beyond what this tool would ever write."""


def check(ok: bool, message: str) -> None:
    """Raise :class:`LimitError` with ``message`` unless ``ok``."""
    if not ok:
        raise LimitError(message)


def feature_limits(cfg: Any) -> list[tuple[bool, str]]:
    """(ok, message) for each limit of a FeatureConfig (already checked for sign and type):
    each field's own cap (its Option's ``most``: these MAX_* constants) and the sizes they
    make together."""
    frames = cfg.n_frames
    cells, framed = cfg.n_stft_bins * frames, frames * cfg.n_fft
    return [
        *excesses(cfg),
        (cfg.clip_samples <= MAX_CLIP_SAMPLES, f"clip_samples={cfg.clip_samples}: at most "
         f"{MAX_CLIP_SAMPLES} ({MAX_CLIP_SAMPLES / cfg.sample_rate:.1f} s at this rate)"),
        (max(cells, framed // 2) <= MAX_FEATURE_CELLS,
         f"n_fft={cfg.n_fft}, hop_length={cfg.hop_length}, clip_samples={cfg.clip_samples}: "
         f"{max(cells, framed // 2):,} spectrogram cells, at most {MAX_FEATURE_CELLS:,}"),
    ]  # fmt: skip


def model_limits(cfg: Any) -> list[tuple[bool, str]]:
    """(ok, message) for each limit of a ModelConfig, computed without building the model."""
    ch = cfg.channels
    h, w = cfg.padded_shape
    # Encoder stage i writes ch[i] maps at 1 / 2**(i+1) of the (padded) input each way; the
    # decoder mirrors it.
    activation = max(c * (h >> (i + 1)) * (w >> (i + 1)) for i, c in enumerate(ch))
    activation = max(activation, h * w)
    return [
        (max(ch) <= MAX_CHANNELS, f"channels={ch}: each at most {MAX_CHANNELS}"),
        (cfg.latent_dim <= MAX_LATENT_DIM, f"latent_dim={cfg.latent_dim}: at most "
         f"{MAX_LATENT_DIM}"),
        (cfg.n_labels <= MAX_LABELS, f"n_labels={cfg.n_labels}: at most {MAX_LABELS}"),
        (cfg.label_dim <= MAX_LABEL_DIM, f"label_dim={cfg.label_dim}: at most {MAX_LABEL_DIM}"),
        (h * w <= MAX_FEATURE_CELLS, f"n_bins={cfg.n_bins}, n_frames={cfg.n_frames}: "
         f"{h * w:,} cells, at most {MAX_FEATURE_CELLS:,}"),
        (activation <= MAX_ACTIVATION, f"channels={ch} on {cfg.n_bins} x {cfg.n_frames}: "
         f"a feature map of {activation:,} values, at most {MAX_ACTIVATION:,}"),
    ]  # fmt: skip


def check_label_names(names: Any, n_labels: int) -> list[str]:
    """``names`` as strings: a list of at most :data:`MAX_LABELS`, ``n_labels`` of them for a
    conditional model (n_labels > 0)."""
    check(isinstance(names, list), f"label_names is a {type(names).__name__}, not a list")
    check(len(names) <= MAX_LABELS, f"label_names: {len(names):,} names, at most {MAX_LABELS:,}")
    check(
        not n_labels or len(names) == n_labels,
        f"label_names: {len(names)} names for a model of n_labels={n_labels}",
    )
    return [str(n) for n in names]


# ------------------------------------------------------------------------------ .npy headers


def read_npy_header(f: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of the ``.npy`` stream at ``f``'s position, read from its header only.

    Raises:
        LimitError: not an ``.npy`` header, or an object dtype (never unpickled).
    """
    try:
        major, _ = np.lib.format.read_magic(f)
        read = {1: np.lib.format.read_array_header_1_0, 2: np.lib.format.read_array_header_2_0}
        if major not in read:
            raise ValueError(f"npy format version {major}")
        shape, _, dtype = read[major](f)
    except (ValueError, OSError, EOFError, SyntaxError) as err:
        raise LimitError(f"unreadable array ({str(err)[:100]})") from None
    check(not dtype.hasobject, f"object dtype {dtype} (a pickle)")
    return tuple(int(n) for n in shape), dtype


def npy_bytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Bytes an array of ``shape`` and ``dtype`` holds."""
    return math.prod(shape) * dtype.itemsize


def npy_file_header(file: Path) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of an ``.npy`` file, checked to fit in the file's own size.

    Raises:
        LimitError: naming ``file``: unreadable header, object dtype, or more data declared
            than the file holds.
    """
    try:
        with open(file, "rb") as f:
            shape, dtype = read_npy_header(f)
            offset = f.tell()
        size = Path(file).stat().st_size
        need = npy_bytes(shape, dtype)
        check(offset + need <= size, f"declares {shape} {dtype} ({need:,} bytes) but holds "
              f"{size - offset:,}")  # fmt: skip
    except LimitError as err:
        raise LimitError(f"{file}: {err}") from None
    return shape, dtype


def npz_headers(
    file: Path, names: tuple[str, ...] | None = None
) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """(shape, dtype) of each member ``names`` (all when None) of an ``.npz``, read from the
    headers without decompressing the arrays.

    Raises:
        LimitError: naming ``file`` and the member: missing, not ``.npy``, object dtype, all
            together over :data:`MAX_ARRAY_BYTES`, or declaring over :data:`MAX_COMPRESSION`
            times what is stored (a zip bomb).
    """
    out, total = {}, 0
    try:
        with zipfile.ZipFile(file) as zf:
            infos = {i.filename.removesuffix(".npy"): i for i in zf.infolist()}
            check(len(infos) <= MAX_NPZ_MEMBERS, f"{len(infos):,} arrays, at most "
                  f"{MAX_NPZ_MEMBERS:,}")  # fmt: skip
            for name in infos if names is None else names:
                check(name in infos, f"no array {name!r}")
                info = infos[name]
                with zf.open(info) as f:
                    try:
                        shape, dtype = read_npy_header(f)
                    except LimitError as err:
                        raise LimitError(f"{name}: {err}") from None
                need = npy_bytes(shape, dtype)
                total += need
                check(
                    total <= MAX_ARRAY_BYTES,
                    f"{name} declares {shape} {dtype} "
                    f"({need:,} bytes): more than the {MAX_ARRAY_BYTES:,} allowed",
                )
                check(need <= MAX_COMPRESSION * info.compress_size + (1 << 16),
                      f"{name} declares {shape} {dtype} ({need:,} bytes) in "
                      f"{info.compress_size:,} stored bytes: a zip bomb")  # fmt: skip
                out[name] = (shape, dtype)
    except LimitError as err:
        raise LimitError(f"{file}: {err}") from None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as err:
        raise LimitError(f"{file}: unreadable .npz ({str(err)[:100]})") from None
    return out


def check_finite(state: dict[str, Any], file: Path, error: type[Exception] = LimitError) -> None:
    """``error`` naming ``file`` and the first floating tensor of ``state`` holding NaN or inf
    (weights that would decode to silence)."""
    import torch

    for name, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            if not bool(torch.isfinite(value).all()):
                raise error(
                    f"{file}: tensor {name!r} holds NaN or inf values; these weights cannot "
                    "make sound: retrain, or resume from an intact copy"
                )
