"""Model export: the shipped checkpoint (conditional, linear bins) and a tiny unconditional
mel model trained for one epoch on the demo set, exported to ONNX and TorchScript; ONNX
Runtime against PyTorch, export.json against the Synthesise page, the numpy-only example
against the app's own synthesis, a vocoder through the real-valued inverse STFT, and the
errors a user can meet."""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import soundfile as sf
import torch
import torchaudio

from tests.clirun import ROOT, vae
from vae.audio import features as F
from vae.audio.io import peak_normalise
from vae.export import exporter as E
from vae.export.graphs import InverseSTFT
from vae.model.checkpoints import CheckpointError, load_checkpoint, read_latents
from vae.synthesis.latent import along_directions, checkpoint_axes, latent_axes
from vae.vocoder.network import VocoderConfig, VocoderNet, load_vocoder, save_vocoder, vocoder_dir

SHIPPED = ROOT / "checkpoints" / "fsdd-digits"
EXAMPLE = ROOT / "examples" / "synthesise_onnx.py"
# 32 mel bands x 33 frames: a mel model checks mel_pinv, and trains in a second.
MEL = F.FeatureConfig(sample_rate=8000, clip_samples=4096, n_fft=256, hop_length=128, n_mels=32)


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _example_module():
    spec = importlib.util.spec_from_file_location("synthesise_onnx", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> tuple:
    """(the shipped checkpoint loaded, its ONNX export)."""
    out = tmp_path_factory.mktemp("export") / "fsdd-digits"
    return load_checkpoint(SHIPPED), E.export_checkpoint(SHIPPED, out)


@pytest.fixture(scope="module")
def mel_checkpoint(tmp_path_factory, demo_set_dir) -> Path:
    """A tiny unconditional VAE on 32-band mel features of the demo set, one epoch."""
    from vae.data.dataset import preprocess
    from vae.training.train import train
    from vae.training.train_config import TrainConfig

    root = tmp_path_factory.mktemp("mel")
    preprocess(demo_set_dir, root / "data", MEL, val_fraction=0.2, seed=0)
    train(
        root / "data",
        root / "ckpt",
        train_config=TrainConfig(epochs=1, batch_size=8, log_every=0, device="cpu", threads=1),
        model_overrides={"channels": (8, 16), "latent_dim": 4, "conditional": False},
    )
    return root / "ckpt"


def test_onnx_decoders_and_encoder_match_pytorch(shipped) -> None:
    ckpt, result = shipped
    model, folder = ckpt.model, result.path
    assert result.files == {
        "decoder": "decoder.onnx",
        "encoder": "encoder.onnx",
        "decoder_mix": "decoder_mix.onnx",
    }
    assert max(result.parity.values()) <= 1e-6  # the export's own check, as measured
    gen = torch.Generator().manual_seed(1)
    for n in (1, 5):  # the batch axis is dynamic
        z = torch.randn(n, 16, generator=gen) * 1.5
        labels = torch.tensor([7, 0, 3, 9, 4][:n])
        with torch.no_grad():
            want = model.decode(z, labels)
        got = _session(folder / "decoder.onnx").run(None, {"z": z.numpy(), "label": labels.numpy()})
        assert got[0].shape == (n, 128, 128)
        assert np.abs(got[0] - want.numpy()).max() < 1e-4

        # The mixing decoder: one-hot rows are the labels themselves, mixes match PyTorch's.
        mix = _session(folder / "decoder_mix.onnx")
        onehot = np.eye(10, dtype=np.float32)[labels.numpy()]
        got_mix = mix.run(None, {"z": z.numpy(), "label_weights": onehot})[0]
        assert np.abs(got_mix - want.numpy()).max() < 1e-4
        weights = torch.softmax(torch.randn(n, 10, generator=gen), dim=1)
        with torch.no_grad():
            want_mix = model.decode(z, weights)
        got_mix = mix.run(None, {"z": z.numpy(), "label_weights": weights.numpy()})[0]
        assert np.abs(got_mix - want_mix.numpy()).max() < 1e-4
        assert np.abs(got_mix - got[0]).max() > 1e-2  # a mix is not its argmax label

        with torch.no_grad():
            mu, logvar = model.encode(want, labels)
        feeds = {"features": want.numpy(), "label": labels.numpy()}
        got_mu, got_logvar = _session(folder / "encoder.onnx").run(None, feeds)
        assert np.abs(got_mu - mu.numpy()).max() < 1e-4
        assert np.abs(got_logvar - logvar.numpy()).max() < 1e-4


def test_manifest_round_trips_and_holds_the_synthesise_axes(shipped) -> None:
    ckpt, result = shipped
    manifest = E.read_export(result.path)
    assert manifest == json.loads((result.path / "export.json").read_text())
    assert manifest["format_version"] == 1 and manifest["format"] == "onnx"
    assert manifest["checkpoint"] == "fsdd-digits" and manifest["epoch"] == ckpt.epoch
    assert F.FeatureConfig.from_dict(manifest["feature_config"]) == ckpt.feature_config
    assert (manifest["latent_dim"], manifest["n_labels"], manifest["conditional"]) == (16, 10, True)
    assert manifest["label_names"] == [str(i) for i in range(10)]
    assert "mel_pinv" not in manifest  # linear bins
    # What the rows are and how many: read here, not worked out again by a consumer.
    assert manifest["feature_type"] == "linear"
    assert manifest["feature_shape"] == list(ckpt.feature_config.shape)
    assert manifest["feature_shape"] == manifest["outputs"]["decoder"][0]["shape"][1:]

    # The Synthesise page: k = min(8, D) axes of the latents' principal directions.
    axes = manifest["directions"]
    page = latent_axes(read_latents(SHIPPED)["means"], 16, min(8, 16))
    for name, want in zip(("centre", "directions", "spread"), page, strict=True):
        np.testing.assert_array_equal(np.asarray(axes[name], np.float32), want)
    assert np.asarray(axes["directions"]).shape == (8, 16)

    cfg = ckpt.feature_config
    assert manifest["phase"] == {
        "method": "griffin-lim",
        "n_iter": cfg.griffin_lim_iters,
        "momentum": cfg.griffin_lim_momentum,
        "n_fft": 256,
        "hop_length": 64,
        "length": 8128,
        "window": "hann",
        "center": True,
        "rand_init": False,
    }
    assert manifest["magnitude_reference"] == float(torch.hann_window(256).sum()) / 2
    # Each model's declared inputs and outputs are what ONNX Runtime sees.
    for role, file in manifest["files"].items():
        session = _session(result.path / file)
        for declared, actual in ((manifest["inputs"][role], session.get_inputs()),
                                 (manifest["outputs"][role], session.get_outputs())):  # fmt: skip
            assert [d["name"] for d in declared] == [a.name for a in actual]
            assert [d["shape"] for d in declared] == [a.shape for a in actual]
            assert [f"tensor({d['dtype'].replace('float32', 'float')})" for d in declared] == [
                a.type for a in actual
            ]


def test_unconditional_mel_export_has_no_labels_and_carries_the_mel_inverse(
    mel_checkpoint, tmp_path
) -> None:
    result = E.export_checkpoint(mel_checkpoint, tmp_path / "mel")
    assert sorted(result.files) == ["decoder", "encoder"]  # no decoder_mix without labels
    manifest = E.read_export(result.path)
    assert manifest["conditional"] is False and manifest["n_labels"] == 0
    # The dataset's names travel along, but the model takes no label.
    assert manifest["label_names"] == load_checkpoint(mel_checkpoint).label_names
    assert [i["name"] for i in manifest["inputs"]["decoder"]] == ["z"]
    assert [i["name"] for i in manifest["inputs"]["encoder"]] == ["features"]
    pinv = np.asarray(manifest["mel_pinv"], np.float32)
    assert pinv.shape == (129, 32)
    assert manifest["feature_type"] == "mel" and manifest["feature_shape"] == [32, MEL.n_frames]
    np.testing.assert_array_equal(pinv, F.mel_inverse(MEL).numpy())
    c, d, s = checkpoint_axes(mel_checkpoint, 4)
    np.testing.assert_array_equal(np.asarray(manifest["directions"]["directions"], np.float32), d)

    model = load_checkpoint(mel_checkpoint).model
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model.decode(z)
        mu, logvar = model.encode(want)
    got = _session(result.path / "decoder.onnx").run(None, {"z": z.numpy()})[0]
    assert got.shape == (3, 32, 33) and np.abs(got - want.numpy()).max() < 1e-4
    got_mu, got_logvar = _session(result.path / "encoder.onnx").run(None, {"features": got})
    assert np.abs(got_mu - mu.numpy()).max() < 1e-4
    assert np.abs(got_logvar - logvar.numpy()).max() < 1e-4


def test_torchscript_export_loads_with_jit_and_matches(shipped, tmp_path) -> None:
    ckpt, _ = shipped
    result = E.export_checkpoint(SHIPPED, tmp_path / "ts", "torchscript")
    assert set(result.files.values()) == {"decoder.pt", "encoder.pt", "decoder_mix.pt"}
    assert E.read_export(result.path)["format"] == "torchscript"
    assert not list(result.path.glob("*.onnx")) and result.parity == {}
    z, labels = (
        torch.randn(4, 16, generator=torch.Generator().manual_seed(2)),
        torch.tensor([1, 2, 8, 5]),
    )
    decoder = torch.jit.load(str(result.path / "decoder.pt"))
    encoder = torch.jit.load(str(result.path / "encoder.pt"))
    mix = torch.jit.load(str(result.path / "decoder_mix.pt"))
    with torch.no_grad():
        want = ckpt.model.decode(z, labels)
        torch.testing.assert_close(decoder(z, labels), want, atol=1e-6, rtol=0)
        torch.testing.assert_close(mix(z, torch.eye(10)[labels]), want, atol=1e-6, rtol=0)
        mu, logvar = ckpt.model.encode(want, labels)
        got_mu, got_logvar = encoder(want, labels)
    torch.testing.assert_close(got_mu, mu, atol=1e-5, rtol=0)
    torch.testing.assert_close(got_logvar, logvar, atol=1e-5, rtol=0)


# Run the example where torch and vae cannot be imported: it must need neither.
NO_TORCH = (
    "import runpy, sys; sys.modules['torch'] = None; sys.modules['torchaudio'] = None; "
    "sys.modules['vae'] = None; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def _run_example(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(EXAMPLE), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def test_example_imports_only_numpy_soundfile_and_onnxruntime() -> None:
    tree = ast.parse(EXAMPLE.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "argparse", "json", "sys", "pathlib"} | {
        "numpy",
        "soundfile",
        "onnxruntime",
    }, imported


def test_example_writes_the_sound_the_app_makes(shipped, tmp_path) -> None:
    ckpt, result = shipped
    wav, npy = tmp_path / "seven.wav", tmp_path / "seven.npy"
    done = _run_example(
        result.path, "--label", "7", "--amounts", "1=2.0,3=-1", "--out", wav, "--features-out", npy
    )
    assert done.returncode == 0, done.stderr
    assert f"wrote {wav}" in done.stdout

    # The features are PyTorch's decode of the same point of the Synthesise page.
    centre, directions, spread = checkpoint_axes(SHIPPED, 16)
    amounts = np.array([2.0, 0, -1.0, 0, 0, 0, 0, 0], np.float32)
    z = torch.from_numpy(along_directions(centre, directions, spread, amounts))[None]
    with torch.no_grad():
        want = ckpt.model.decode(z, [7])[0]
    feats = np.load(npy)
    assert feats.shape == (128, 128) and np.abs(feats - want.numpy()).max() < 1e-4

    # The audio is the app's Griffin-Lim up to float32 rounding, which 32 iterations with
    # momentum 0.99 amplify: measured max 1.3e-2, relative L2 8.3e-3 (of a 0.99 peak), less
    # than the app's own Griffin-Lim moves (2.1e-2, 1.3e-2) when fed the ONNX features,
    # which differ from PyTorch's by 1e-7. In float64 the two are equal (next test).
    wave, rate = sf.read(wav, dtype="float32")
    assert rate == 8000 and wave.shape == (8128,)
    app = peak_normalise(F.features_to_waveform(want, ckpt.feature_config).numpy())
    assert np.abs(wave - app).max() < 3e-2
    assert np.linalg.norm(wave - app) / np.linalg.norm(app) < 2e-2

    # Unconditional models need no label; a conditional one refuses to guess.
    done = _run_example(result.path, "--out", wav)
    assert done.returncode != 0 and "pass --label" in done.stderr


def test_numpy_griffin_lim_is_torchaudios_step_for_step(shipped, mel_checkpoint, tmp_path) -> None:
    example = _example_module()
    ckpt, result = shipped
    manifest = example.load_export(result.path)
    with torch.no_grad():
        feats = ckpt.model.decode(torch.zeros(1, 16), [3])[0]  # (128, 128)
    feats[100:, :20] = 0.0  # the floor: silence, not -80 dB
    mag = example.features_to_magnitude(feats.numpy(), manifest)  # float64, Nyquist row added
    torch_mag = F.features_to_magnitude(feats, ckpt.feature_config)
    assert mag.shape == (129, 128) and np.abs(mag - torch_mag.numpy()).max() < 1e-4
    assert (mag[100:-1, :20] == 0).all() and (mag[-1] == 0).all() and (mag[:100] > 0).all()

    # In float64 both are the same algorithm to rounding: measured 7.8e-13.
    cfg = ckpt.feature_config
    want = torchaudio.functional.griffinlim(
        torch.from_numpy(mag),
        torch.hann_window(cfg.n_fft, dtype=torch.float64),
        cfg.n_fft,
        cfg.hop_length,
        cfg.n_fft,
        1.0,
        cfg.griffin_lim_iters,
        cfg.griffin_lim_momentum,
        cfg.clip_samples,
        False,
    )
    got = example.griffin_lim(mag, manifest["phase"])
    assert got.shape == (8128,) and np.abs(got - want.numpy()).max() < 1e-9

    # Mel features go back through the exported pseudo-inverse, as the app's do.
    mel = E.export_checkpoint(mel_checkpoint, tmp_path / "mel")
    mel_manifest = example.load_export(mel.path)
    mel_feats = np.load(mel_checkpoint.parent / "data" / "features.npy")[:2]
    for f in mel_feats:
        back = example.features_to_magnitude(f, mel_manifest)
        ref = F.features_to_magnitude(torch.from_numpy(f.astype(np.float32)), MEL).numpy()
        assert back.shape == (129, 33)
        assert np.abs(back - ref).max() <= 1e-4 * ref.max()


@pytest.mark.slow
@pytest.mark.parametrize(("phase", "magnitude"), [("direct", "input"), ("integrated", "predicted")])
def test_a_vocoder_is_exported_and_the_example_plays_through_it(
    mel_checkpoint, tmp_path, phase, magnitude
) -> None:
    ckpt = tmp_path / "ckpt"
    shutil.copytree(mel_checkpoint, ckpt)
    torch.manual_seed(0)  # an untrained vocoder: the export, not the sound, is under test
    net = VocoderNet(VocoderConfig(MEL, width=16, layers=2, phase=phase, magnitude=magnitude))
    save_vocoder(vocoder_dir(ckpt), net, {"steps": 0, "verdict": {"won": True}})
    result = E.export_checkpoint(ckpt, tmp_path / "export")
    manifest = E.read_export(result.path)
    assert result.files["vocoder"] == "vocoder.onnx"
    assert (
        manifest["phase"]["method"] == "vocoder" and manifest["phase"]["vocoder_refine_iters"] == 0
    )
    assert manifest["outputs"]["vocoder"] == [
        {"name": "waveform", "dtype": "float32", "shape": ["batch", 4096]}
    ]

    vocoder = load_vocoder(ckpt)
    feats = np.load(mel_checkpoint.parent / "data" / "features.npy")[:3].astype(np.float32)
    want = vocoder.to_waveform(feats).numpy()
    got = _session(result.path / "vocoder.onnx").run(None, {"features": feats})[0]
    # PyTorch sums the integrated phase in float32 (the export in float64): measured
    # 1.5e-4 of the peak there (7.4e-5 of 0.48), 1.0e-6 for the direct phase (peak 1.36).
    tolerance = 1e-4 if phase == "direct" else 1e-3 * np.abs(want).max()
    assert got.shape == (3, 4096) and np.abs(got - want).max() < tolerance
    scripted = E.export_checkpoint(ckpt, tmp_path / "ts", "torchscript")
    traced = torch.jit.load(str(scripted.path / scripted.files["vocoder"]))
    with torch.no_grad():
        got = traced(torch.from_numpy(feats)).numpy()
    assert np.abs(got - want).max() < tolerance

    wav, npy = tmp_path / "voc.wav", tmp_path / "voc.npy"
    done = _run_example(result.path, "--seed", "4", "--out", wav, "--features-out", npy)
    assert done.returncode == 0, done.stderr
    decoded = np.load(npy)
    played, _ = sf.read(wav, dtype="float32")
    app = peak_normalise(vocoder.to_waveform(decoded).numpy())
    assert np.abs(played - app).max() < (1e-3 if phase == "direct" else 1e-2)


@pytest.mark.slow
def test_a_vocoder_that_lost_stays_out_of_the_export(mel_checkpoint, tmp_path) -> None:
    """The export plays what ``--phase auto`` and the app play: a vocoder that lost to
    Griffin-Lim, or has no verdict, is left out and the manifest says why."""
    ckpt = tmp_path / "ckpt"
    shutil.copytree(mel_checkpoint, ckpt)
    net = VocoderNet(VocoderConfig(MEL, width=16, layers=1))
    lost = {
        "won": False,
        "measured": True,
        "clips": 4,
        "lsd_db": {"vocoder": 5.0, "griffin_lim": 2.0},
        "sc": {"vocoder": 0.5, "griffin_lim": 0.1},
    }
    for name, report in (("lost", {"verdict": lost}), ("old", {"steps": 0})):
        save_vocoder(vocoder_dir(ckpt), net, report)
        result = E.export_checkpoint(ckpt, tmp_path / name, "torchscript")  # no ONNX check
        phase = E.read_export(result.path)["phase"]
        assert "vocoder" not in result.files and phase["method"] == "griffin-lim", name
        assert not (result.path / "vocoder.pt").exists()
        assert phase["vocoder_left_out"].endswith(": Griffin-Lim is the phase")
    assert E.read_export(tmp_path / "lost")["phase"]["vocoder_left_out"].startswith(
        "the vocoder lost to Griffin-Lim on the validation copies (LSD 5.00 vs 2.00 dB"
    )


def test_inverse_stft_is_torch_istft() -> None:
    gen = torch.Generator().manual_seed(0)
    for cfg in (F.PRESETS["fsdd"], MEL, MEL.replace(n_fft=128, hop_length=100, clip_samples=4000)):
        spec = torch.randn(2, cfg.n_stft_bins, cfg.n_frames, dtype=torch.complex64, generator=gen)
        window = torch.hann_window(cfg.n_fft)
        want = torch.istft(spec, cfg.n_fft, cfg.hop_length, window=window, length=cfg.clip_samples)
        got = InverseSTFT(cfg)(spec.real, spec.imag)
        assert got.shape == want.shape and (got - want).abs().max() < 1e-5


@pytest.mark.slow
def test_re_export_replaces_the_old_one_and_a_failed_check_keeps_it(tmp_path, monkeypatch):
    """Issue 23 finding 10: the old export's files go, the user's own files stay."""
    out = tmp_path / "out"
    E.export_checkpoint(SHIPPED, out)
    (out / "my_notes.txt").write_text("mine")
    (out / "sub").mkdir()
    (out / "sub" / "keep.txt").write_text("kept")
    E.export_checkpoint(SHIPPED, out, "torchscript")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["decoder.pt", "decoder_mix.pt", "encoder.pt", "export.json", "my_notes.txt", "sub"]
    )
    assert (out / "my_notes.txt").read_text() == "mine"
    assert (out / "sub" / "keep.txt").read_text() == "kept"
    monkeypatch.setattr(E, "PARITY_TOLERANCE", -1.0)  # no export can pass
    with pytest.raises(E.ExportError, match=r"decoder.onnx: ONNX Runtime's features differ"):
        E.export_checkpoint(SHIPPED, out)
    assert E.read_export(out)["format"] == "torchscript"  # the previous export stands
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temp folder left


def test_damaged_or_missing_checkpoints_and_bad_targets_give_clear_errors(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint folder here"):
        E.export_checkpoint(tmp_path / "nope", tmp_path / "out")
    broken = tmp_path / "broken"
    shutil.copytree(SHIPPED, broken, ignore=shutil.ignore_patterns("judge"))
    weights = (broken / "model.pt").read_bytes()
    (broken / "model.pt").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(CheckpointError, match=r"model.pt: truncated or corrupt"):
        E.export_checkpoint(broken, tmp_path / "out")
    (broken / "config.json").unlink()
    with pytest.raises(CheckpointError, match="missing config.json"):
        E.export_checkpoint(broken, tmp_path / "out")
    with pytest.raises(E.ExportError, match="format 'tflite'"):
        E.export_checkpoint(SHIPPED, tmp_path / "out", "tflite")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(E.ExportError, match="exists and is not an export"):
        E.export_checkpoint(SHIPPED, busy)
    assert (busy / "notes.txt").read_text() == "mine"
    with pytest.raises(E.ExportError, match="would replace the checkpoint"):
        E.export_checkpoint(SHIPPED, SHIPPED.parent)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cli_export_prints_files_and_sizes_and_fails_in_one_line(tmp_path) -> None:
    out = tmp_path / "cli"
    done = vae("export", SHIPPED, "--out", out)
    for name in ("decoder.onnx", "encoder.onnx", "decoder_mix.onnx", "export.json"):
        assert (out / name).is_file() and name in done.stdout
    assert "1.78 MB" in done.stdout and "decoder: ONNX Runtime matches PyTorch" in done.stdout
    failed = vae("export", tmp_path / "nope", "--out", out, check=False)
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: ") and len(failed.stderr.strip().splitlines()) == 1


def test_export_zip_holds_a_runnable_export(shipped) -> None:
    data = E.export_zip(SHIPPED)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = sorted(zf.namelist())
        assert names == [
            f"export-fsdd-digits-onnx/{n}"
            for n in ("decoder.onnx", "decoder_mix.onnx", "encoder.onnx", "export.json")
        ]
        decoder = ort.InferenceSession(zf.read("export-fsdd-digits-onnx/decoder.onnx"))
    ckpt, _ = shipped
    z = np.zeros((1, 16), np.float32)
    with torch.no_grad():
        want = ckpt.model.decode(torch.from_numpy(z), [5]).numpy()
    got = decoder.run(None, {"z": z, "label": np.array([5])})[0]
    assert np.abs(got - want).max() < 1e-4
    with pytest.raises(E.ExportError, match="no export here"):
        E.pack_export(SHIPPED)
