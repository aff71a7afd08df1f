"""Export a checkpoint for use without this project: ONNX (or TorchScript) files and a
manifest that says how to drive them and how to turn their output into sound.

An export is a folder, built aside and put in place (an older export's files are replaced,
any other file in the folder is kept; a folder that is not an export is refused):
    decoder.onnx      z (B, D) float32 [, label (B,) int64] -> features (B, bins, frames)
    decoder_mix.onnx  conditional models: z, label_weights (B, n_labels) -> features
    encoder.onnx      features [, label] -> mu, logvar (B, D)
    vocoder.onnx      when the checkpoint has a vocoder that beat Griffin-Lim (the one
                      ``--phase auto`` plays): features -> waveform (B, samples)
    export.json       format version, feature config, label names, the Synthesise page's
                      slider axes, the phase method with its Griffin-Lim settings, the file
                      of each role with its inputs and outputs, and for mel features the
                      pseudo-inverse that maps mel bands back to STFT bins.
``--format torchscript`` writes ``.pt`` files (``torch.jit.trace``) instead of ``.onnx``.
ONNX exports are checked with ONNX Runtime before they are kept: the decoder must match
PyTorch within :data:`PARITY_TOLERANCE`. ``examples/synthesise_onnx.py`` plays an export
with numpy and onnxruntime only.
"""

from __future__ import annotations

import io
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vae.audio import features as F
from vae.export import graphs
from vae.model.checkpoints import Checkpoint, load_checkpoint, utc_now
from vae.storage.files import (
    atomic_write_json,
    read_versioned_json,
    versions,
)
from vae.storage.output_folder import EXPORT, check_output_folder, write_output
from vae.synthesis.latent import checkpoint_axes
from vae.vocoder.network import Vocoder, describe_verdict, has_vocoder, load_vocoder, vocoder_dir

EXPORT_FORMAT_VERSION = 1
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
MANIFEST = "export.json"
OPSET = 17  # ONNX Runtime 1.16+ and onnxruntime-web run it; LayerNormalization needs 17
PARITY_TOLERANCE = 1e-4  # largest |ONNX Runtime - PyTorch| accepted for decoded features
BATCH = "batch"


class ExportError(ValueError):
    """An export that cannot be made or fails its check; the message names the fix."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_checkpoint` wrote: the folder, each role's file, and for ONNX the
    largest difference between ONNX Runtime's and PyTorch's decoded features."""

    path: Path
    format: str
    files: dict[str, str]
    parity: dict[str, float] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        """Bytes of every file in the export, the manifest included."""
        names = [*self.files.values(), MANIFEST]
        return {name: (self.path / name).stat().st_size for name in names}


# ------------------------------------------------------------------------------ the models


def _io(model: Checkpoint, vocoder: bool) -> dict[str, tuple[list, list]]:
    """(inputs, outputs) of each role as [(name, dtype, shape)]; "batch" is dynamic."""
    mc, samples = model.model_config, model.feature_config.clip_samples
    d, feats = mc.latent_dim, ("features", "float32", [BATCH, mc.n_bins, mc.n_frames])
    label = [("label", "int64", [BATCH])] if mc.conditional else []
    stats = [("mu", "float32", [BATCH, d]), ("logvar", "float32", [BATCH, d])]
    roles = {
        "decoder": ([("z", "float32", [BATCH, d]), *label], [feats]),
        "encoder": ([feats, *label], stats),
    }
    if mc.conditional:
        weights = ("label_weights", "float32", [BATCH, mc.n_labels])
        roles["decoder_mix"] = ([("z", "float32", [BATCH, d]), weights], [feats])
    if vocoder:
        roles["vocoder"] = ([feats], [("waveform", "float32", [BATCH, samples])])
    return roles


def _example(spec: tuple[str, str, list], rng: torch.Generator, n: int = 2) -> torch.Tensor:
    """A batch of ``n`` inputs of one (name, dtype, shape): codes, features, labels, weights."""
    name, dtype, shape = spec
    size = [n if s == BATCH else s for s in shape]
    if name == "label":
        return torch.zeros(size, dtype=torch.int64)
    if name == "label_weights":
        return torch.softmax(torch.randn(size, generator=rng), dim=1)
    if name == "features":
        return torch.rand(size, generator=rng)
    return torch.randn(size, generator=rng)


def _modules(ckpt: Checkpoint, vocoder: Vocoder | None) -> dict[str, torch.nn.Module]:
    model = ckpt.model.eval()
    found = {"decoder": graphs.Decoder(model), "encoder": graphs.Encoder(model)}
    if ckpt.model_config.conditional:
        found["decoder_mix"] = graphs.MixDecoder(model)
    if vocoder is not None:
        found["vocoder"] = graphs.Vocoder(vocoder.net).eval()
    return found


def _declare_shapes(path: Path, specs: tuple[list, list]) -> None:
    """Write the declared shapes into the ONNX file's inputs and outputs: the exporter
    leaves the decoder's cropped (bins, frames) as symbols, and a consumer should not have
    to guess them."""
    import onnx

    model = onnx.load(str(path))
    for values, declared in zip((model.graph.input, model.graph.output), specs, strict=True):
        for value, (name, _, shape) in zip(values, declared, strict=True):
            assert value.name == name, (value.name, name)
            dims = value.type.tensor_type.shape.dim
            for dim, size in zip(dims, shape, strict=True):
                if size == BATCH:
                    dim.dim_param = BATCH
                else:
                    dim.dim_value = int(size)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _write(module: torch.nn.Module, args: tuple, path: Path, fmt: str, specs: tuple) -> None:
    """One module to ``path`` as ONNX (batch axis dynamic) or traced TorchScript; ``specs``
    (inputs, outputs) as [(name, dtype, shape)]."""
    inputs, outputs = ([s[0] for s in group] for group in specs)
    with warnings.catch_warnings(), torch.no_grad():
        # The model's argument checks run once on the example and become constants: the
        # tracer says so for each one, and the shapes are fixed by the manifest anyway.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # "legacy exporter": chosen, below
        warnings.filterwarnings("ignore", "Constant folding")  # a slice it leaves to the runtime
        if fmt == "torchscript":
            # Frozen: the weights become constants and the unused half of the VAE is dropped.
            traced = torch.jit.trace(module.eval(), args, check_trace=False)
            torch.jit.freeze(traced).save(str(path))
            return
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes={name: {0: BATCH} for name in (*inputs, *outputs)},
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: 0.3 s, no onnxscript needed
        )
    _declare_shapes(path, specs)


def _ort_session(path: Path) -> Any:
    import onnxruntime as ort  # present: export_checkpoint asked onnx_versions() first

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # a few small batches: threads only add start-up
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _check(folder: Path, modules: dict[str, torch.nn.Module], roles: dict) -> dict[str, float]:
    """Max |ONNX Runtime - PyTorch| of the decoders on 3 random codes (labels 0..2 mod n).

    Raises:
        ExportError: a difference above PARITY_TOLERANCE.
    """
    rng = torch.Generator().manual_seed(0)
    parity = {}
    for role in ("decoder", "decoder_mix"):
        if role not in modules:
            continue
        inputs = [_example(spec, rng, n=3) for spec in roles[role][0]]
        if len(inputs) > 1 and inputs[1].dtype == torch.int64:
            n_labels = modules[role].model.config.n_labels
            inputs[1] = torch.arange(3) % n_labels
        with torch.no_grad():
            want = modules[role](*inputs).numpy()
        feeds = {spec[0]: x.numpy() for spec, x in zip(roles[role][0], inputs, strict=True)}
        file = folder / (role + FORMATS["onnx"])
        got = _ort_session(file).run(None, feeds)[0]
        parity[role] = float(np.abs(got - want).max())
        if not parity[role] <= PARITY_TOLERANCE:
            raise ExportError(
                f"{file}: ONNX Runtime's features differ from PyTorch's by "
                f"{parity[role]:.3g} (more than {PARITY_TOLERANCE:g}); the export is not kept: "
                "try --format torchscript, or report it with your torch and onnxruntime versions"
            )
    return parity


# ------------------------------------------------------------------------------ the manifest


def onnx_versions() -> dict[str, str]:
    """Versions of onnx (torch's exporter needs it) and onnxruntime (the check needs it).

    Raises:
        ExportError: either is missing, with the command that installs them.
    """
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise ExportError(
            f"{err.name} is not installed: ONNX exports need onnx and onnxruntime; "
            "`pip install -r requirements.txt` (or export with --format torchscript)"
        ) from None
    return {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def _specs(items: list) -> list[dict[str, Any]]:
    return [{"name": n, "dtype": t, "shape": s} for n, t, s in items]


def manifest(
    ckpt: Checkpoint,
    files: dict[str, str],
    roles: dict,
    fmt: str,
    vocoder: Vocoder | None,
    k_directions: int | None = None,
    left_out: str | None = None,
) -> dict[str, Any]:
    """export.json's content: everything a consumer needs besides the model files.

    ``left_out`` says why the checkpoint's vocoder is not in the export (it lost to
    Griffin-Lim, or has no verdict): the phase is then Griffin-Lim, as the app plays it.
    """
    cfg, mc = ckpt.feature_config, ckpt.model_config
    centre, directions, spread = checkpoint_axes(ckpt.path, mc.latent_dim, k_directions)
    phase = {
        "method": "vocoder" if vocoder is not None else "griffin-lim",
        "n_iter": cfg.griffin_lim_iters,
        "momentum": cfg.griffin_lim_momentum,
        "n_fft": cfg.n_fft,
        "hop_length": cfg.hop_length,
        "length": cfg.clip_samples,
        "window": "hann",  # periodic, as torch.hann_window
        "center": True,
        "rand_init": False,
    }
    if vocoder is not None:
        # The exported vocoder is its single pass; the refinement is not in the file.
        phase["vocoder_refine_iters"] = vocoder.config.refine_iters
    elif left_out:
        phase["vocoder_left_out"] = left_out
    data: dict[str, Any] = {
        "format_version": EXPORT_FORMAT_VERSION,
        "format": fmt,
        "checkpoint": ckpt.path.resolve().name,
        "epoch": ckpt.epoch,
        "exported_at": utc_now(),
        "versions": {**versions(), **(onnx_versions() if fmt == "onnx" else {})},
        "feature_config": cfg.to_dict(),
        # What the feature rows are and how many (FeatureConfig.n_bins): a consumer reads
        # the shape here rather than working it out from the config.
        "feature_type": cfg.feature_type.name,
        "feature_shape": [cfg.n_bins, cfg.n_frames],
        "latent_dim": mc.latent_dim,
        "n_labels": mc.n_labels,
        "conditional": mc.conditional,
        "label_names": list(ckpt.label_names),
        "directions": {
            "centre": centre.tolist(),
            "directions": directions.tolist(),
            "spread": spread.tolist(),
        },
        "phase": phase,
        # Feature f -> magnitude reference * 10 ** ((f - 1) * top_db / 20), 0 where f == 0.
        "magnitude_reference": F.reference_magnitude(cfg),
        "files": dict(files),
        "inputs": {role: _specs(roles[role][0]) for role in files},
        "outputs": {role: _specs(roles[role][1]) for role in files},
    }
    if fmt == "onnx":
        data["opset"] = OPSET
    inverse = F.bank_inverse(cfg)
    if inverse is not None:  # the rows are a filter bank (mel, the first, named the key)
        data["mel_pinv"] = inverse.tolist()  # (n_stft_bins, rows): rows back to STFT bins
    return data


# ------------------------------------------------------------------------------ export


def _load_vocoder(ckpt: Checkpoint) -> tuple[Vocoder | None, str | None]:
    """(the vocoder to export, why the checkpoint's is left out): only one that beat
    Griffin-Lim when trained, as ``--phase auto`` and the app choose."""
    folder = vocoder_dir(ckpt.path)
    if not has_vocoder(folder):
        return None, None
    try:
        vocoder = load_vocoder(folder, ckpt.feature_config)
    except ValueError as err:
        raise ExportError(
            f"{err} (or delete {folder} to export with Griffin-Lim as the phase)"
        ) from None
    if not vocoder.won:
        return None, f"{describe_verdict(vocoder.info)}: Griffin-Lim is the phase"
    return vocoder, None


def _check_target(out: Path, checkpoint: Path) -> None:
    """Refuse to write into a folder that is not an export (a checkpoint, a dataset, user
    files: :func:`vae.storage.output_folder.check_output_folder`) or that holds the checkpoint."""
    if out.resolve() == checkpoint.resolve() or checkpoint.resolve().is_relative_to(out.resolve()):
        raise ExportError(f"--out {out}: that would replace the checkpoint; pick a new folder")
    try:
        check_output_folder(out, EXPORT)
    except ValueError as err:
        raise ExportError(str(err)) from None


def export_checkpoint(
    checkpoint_dir: str | Path,
    out_dir: str | Path,
    fmt: str = "onnx",
    k_directions: int | None = None,
) -> ExportResult:
    """Export the checkpoint folder ``checkpoint_dir`` into the folder ``out_dir``.

    Args:
        fmt: "onnx" or "torchscript".
        k_directions: slider axes in export.json; default as the Synthesise page,
            ``min(8, latent_dim)``.
    Raises:
        CheckpointError: a missing, incomplete or damaged checkpoint.
        ExportError: an unknown format, an ``out_dir`` that is not an export, an unusable
            vocoder, or ONNX Runtime disagreeing with PyTorch.
    """
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r}: choose one of {sorted(FORMATS)}")
    if fmt == "onnx":
        onnx_versions()
    checkpoint, out = Path(checkpoint_dir), Path(out_dir)
    ckpt = load_checkpoint(checkpoint)
    vocoder, left_out = _load_vocoder(ckpt)
    _check_target(out, checkpoint)
    roles, modules = _io(ckpt, vocoder is not None), _modules(ckpt, vocoder)
    files = {role: role + FORMATS[fmt] for role in modules}

    parity: dict[str, float] = {}

    def write(tmp: Path) -> None:
        rng = torch.Generator().manual_seed(0)
        for role, module in modules.items():
            args = tuple(_example(spec, rng) for spec in roles[role][0])
            _write(module, args, tmp / files[role], fmt, roles[role])
        if fmt == "onnx":
            parity.update(_check(tmp, modules, roles))
        data = manifest(ckpt, files, roles, fmt, vocoder, k_directions, left_out)
        atomic_write_json(tmp / MANIFEST, data)

    write_output(out, EXPORT, write)  # an older export's files replaced, any other file kept
    return ExportResult(out, fmt, files, parity)


def read_export(path: str | Path) -> dict[str, Any]:
    """An export folder's export.json, its format version checked."""
    file = Path(path) / MANIFEST
    fix = "export the checkpoint (again) with `python -m vae export CKPT --out DIR`"
    return read_versioned_json(
        file, EXPORT_FORMAT_VERSION, "export", fix, ExportError, "not an export"
    )


def pack_export(path: str | Path) -> bytes:
    """The export folder as zip bytes for a download, its files under ``<folder name>/``."""
    path = Path(path)
    if not (path / MANIFEST).is_file():
        raise ExportError(f"{path}: no export here (no {MANIFEST}); run `python -m vae export`")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(p for p in path.iterdir() if p.is_file()):
            zf.write(file, f"{path.name}/{file.name}")
    return buf.getvalue()


def export_name(checkpoint_dir: str | Path, fmt: str = "onnx") -> str:
    """``export-<checkpoint>-<format>``: the folder and zip name of a download."""
    return f"export-{Path(checkpoint_dir).resolve().name}-{fmt}"


def export_zip(checkpoint_dir: str | Path, fmt: str = "onnx") -> bytes:
    """Export into a temporary folder and return it zipped (:func:`pack_export`), for the
    app's download: nothing is left on disk."""
    with tempfile.TemporaryDirectory(prefix="vae-export-") as tmp:
        result = export_checkpoint(
            checkpoint_dir, Path(tmp) / export_name(checkpoint_dir, fmt), fmt
        )
        return pack_export(result.path)
