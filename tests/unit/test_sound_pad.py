"""The sound pad's own arithmetic, without a browser: its JS Griffin-Lim (run by node)
must give the library's sound for the same features, so what a person hears while
dragging is what the server would play and download."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torchaudio

from tests.noderun import NODE, run_node
from vae.audio import features as F
from vae.audio.features import FeatureConfig
from vae.export.exporter import MANIFEST as MANIFEST_NAME

pytestmark = pytest.mark.skipif(NODE is None, reason="no node here (apt-get install nodejs)")


def _tone(cfg: FeatureConfig, seed: int = 0) -> np.ndarray:
    """A decaying harmonic chirp with a little noise: phase structure Griffin-Lim must find."""
    rng = np.random.default_rng(seed)
    t = np.arange(cfg.clip_samples) / cfg.sample_rate
    f0 = 180 + 120 * t
    wave = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / cfg.sample_rate) / k for k in (1, 2, 3))
    wave *= np.exp(-2.5 * t)
    return (wave + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def _js_griffin_lim(cfg: FeatureConfig, feats: np.ndarray, tmp_path: Path) -> np.ndarray:
    job = {
        "cfg": {
            "n_fft": cfg.n_fft,
            "hop_length": cfg.hop_length,
            "clip_samples": cfg.clip_samples,
            "top_db": cfg.top_db,
            "drop_last_bin": cfg.drop_last_bin,
            "n_mels": cfg.n_mels,
            "mel_pinv": None if F.bank_inverse(cfg) is None else F.bank_inverse(cfg).tolist(),
        },
        "feats": feats.ravel().tolist(),
        "n_iter": cfg.griffin_lim_iters,
        "momentum": cfg.griffin_lim_momentum,
    }
    return np.array(run_node("griffin_lim_node.js", job, tmp_path), dtype=np.float32)


@pytest.mark.parametrize(
    "cfg",
    [
        F.get_preset("fsdd"),
        FeatureConfig(
            sample_rate=16000, clip_samples=8000, n_fft=512, hop_length=128, drop_last_bin=False
        ),
        FeatureConfig(
            sample_rate=16000,
            clip_samples=8000,
            n_fft=512,
            hop_length=128,
            n_mels=64,
            griffin_lim_momentum=0.9,
        ),
    ],
    ids=["fsdd", "linear-with-nyquist", "mel"],
)
@pytest.mark.slow
def test_the_page_hears_what_the_server_plays(cfg: FeatureConfig, tmp_path: Path):
    feats = F.waveform_to_features(_tone(cfg), cfg)  # (bins, frames)
    heard = _js_griffin_lim(cfg, feats.numpy(), tmp_path)
    assert heard.shape == (cfg.clip_samples,)
    # The same algorithm in float64 (torchaudio's GriffinLim, as the library builds it):
    # measured 1.7e-4 / 3.8e-4 / 2.1e-4 of full scale for the three settings.
    mag = F.features_to_magnitude(feats, cfg).double()
    exact = torchaudio.transforms.GriffinLim(
        n_fft=cfg.n_fft,
        n_iter=cfg.griffin_lim_iters,
        hop_length=cfg.hop_length,
        power=1.0,
        momentum=cfg.griffin_lim_momentum,
        length=cfg.clip_samples,
        rand_init=False,
        window_fn=lambda n: torch.hann_window(n, dtype=torch.float64),
    )(mag).numpy()
    peak = np.abs(exact).max()
    assert np.abs(heard - exact).max() < 1e-3 * peak
    # The server's float32 run drifts from both by rounding through 32 momentum steps
    # (6.8e-3 of full scale on the mel setting); the page is as close to it as that.
    served = F.features_to_waveform(feats, cfg).numpy()
    assert np.abs(heard - served).max() < 1e-2 * peak


def test_the_page_refuses_an_fft_size_it_cannot_do(tmp_path: Path):
    cfg = FeatureConfig(sample_rate=8000, clip_samples=4000, n_fft=300, hop_length=100)
    feats = F.waveform_to_features(_tone(cfg), cfg).numpy()
    with pytest.raises(subprocess.CalledProcessError):
        _js_griffin_lim(cfg, feats, tmp_path)


def _demo_copy(studio_root: Path, target: Path) -> Path:
    shutil.copytree(studio_root / "checkpoints" / "demo", target)
    return target


def test_pad_exports_are_keyed_by_content(studio_root: Path, tmp_path: Path):
    """Copies of a checkpoint share one export; a retrained one (new weights) gets its own."""
    from ui.sound_pad import exports
    from vae.model.checkpoints import WEIGHTS_FILE

    models = tmp_path / "models"
    a = exports.ensure(_demo_copy(studio_root, tmp_path / "a"), models)
    b = exports.ensure(_demo_copy(studio_root, tmp_path / "b"), models)
    assert a.model_url == b.model_url and [p.name for p in models.iterdir()] == [a.folder.name]
    state = torch.load(tmp_path / "b" / WEIGHTS_FILE, weights_only=True)
    state["model"] = {
        k: v + 0.01 if v.is_floating_point() else v for k, v in state["model"].items()
    }
    torch.save(state, tmp_path / "b" / WEIGHTS_FILE)  # "retrained"
    c = exports.ensure(tmp_path / "b", models)
    assert c.folder != a.folder and sorted(p.name for p in models.iterdir()) == sorted(
        [a.folder.name, c.folder.name]
    )


def test_cleaning_never_removes_an_export_in_use(studio_root: Path, tmp_path: Path):
    """Over the disk budget, clean-up removes the least recently used exports but never one
    a page was handed recently, however old its files (finding 6: the newest-8 rule deleted
    exports that sessions were still playing)."""
    import os
    import time

    from ui.sound_pad import exports

    models = tmp_path / "models"
    ckpt = _demo_copy(studio_root, tmp_path / "demo")
    live = exports.ensure(ckpt, models)
    for i in range(12):  # exports of other checkpoints, newer files but not used for an hour
        old = models / f"{i:020x}"
        old.mkdir()
        (old / "decoder.onnx").write_bytes(b"x" * 1000)
        os.utime(old, (time.time() - 3600, time.time() - 3600))
    for file in live.folder.iterdir():  # the live export's own files are the oldest
        os.utime(file, (1000, 1000))
    exports.ensure(ckpt, models)  # a page run of a session using it
    removed = exports.tidy(models, budget=1)
    assert len(removed) == 12
    assert [p.name for p in models.iterdir()] == [live.folder.name]
    assert (live.folder / live.model_url.split("/")[-1].split("?")[0]).is_file()
    # Unused past the window it may go (over the budget), and this process forgets it too:
    later = time.time() + exports.IN_USE_SECONDS + 1
    assert exports.tidy(models, budget=1, now=later) == [live.folder]
    assert live.folder.name not in exports.handed_out()
    again = exports.ensure(ckpt, models)
    assert again.folder == live.folder and again.model_url != live.model_url


def test_a_removed_or_unloadable_export_is_made_again(studio_root: Path, tmp_path: Path):
    """A folder removed under a running server is exported again at the next hand-out (never
    a URL that answers 404); a page that could not load its URL gets a new one, once."""
    from ui.sound_pad import exports

    models = tmp_path / "models"
    ckpt = _demo_copy(studio_root, tmp_path / "demo")
    first = exports.ensure(ckpt, models)
    shutil.rmtree(first.folder)
    second = exports.ensure(ckpt, models)
    assert second.model_url != first.model_url and (second.folder / MANIFEST_NAME).is_file()
    third = exports.ensure(ckpt, models, failed_url=second.model_url)  # "could not load it"
    assert third.model_url != second.model_url
    # A stale report (an older URL) changes nothing.
    assert exports.ensure(ckpt, models, failed_url=second.model_url).model_url == third.model_url
    (third.folder / MANIFEST_NAME).unlink()  # half removed: the model file without a manifest
    assert exports.ensure(ckpt, models).model_url != third.model_url


def test_a_model_over_the_size_is_not_for_the_browser():
    from ui.sound_pad import exports

    assert exports.too_big(exports.MAX_PARAMETERS) is None
    assert exports.too_big(64_000_000) == (
        "this model has 64.0 M parameters, more than the 12 M the in-browser player takes "
        "(a large download and seconds a sound); here the server makes each sound"
    )


def test_the_page_points_where_the_library_points(tmp_path: Path):
    """Sliders, α (lerp and slerp, nearly parallel and opposite codes too) and the label
    mix in latent.js give vae.synthesis.latent's codes."""
    from vae.synthesis.latent import along_directions, lerp, slerp

    rng = np.random.default_rng(0)
    a = rng.standard_normal(16).astype(np.float32)
    pairs = [
        (a, rng.standard_normal(16).astype(np.float32)),
        (a, a * 1.5 + 1e-6),  # nearly parallel: slerp falls back to lerp's weights
        (a, -a),  # opposite
    ]
    ts = [0.0, 0.13, 0.5, 0.87, 1.0]
    centre = rng.standard_normal(16).astype(np.float32)
    directions = np.linalg.qr(rng.standard_normal((16, 8)))[0].T.astype(np.float32)  # (8, 16)
    spread = rng.uniform(0.5, 1.5, 8).astype(np.float32)
    amounts = rng.uniform(-3, 3, 8).astype(np.float32)
    residual = (0.01 * rng.standard_normal(16)).astype(np.float32)
    wa, wb = np.eye(10, dtype=np.float32)[3], np.eye(10, dtype=np.float32)[7]
    job = {
        "pairs": [[p.tolist(), q.tolist()] for p, q in pairs],
        "ts": ts,
        "centre": centre.tolist(),
        "directions": directions.tolist(),
        "spread": spread.tolist(),
        "amounts": amounts.tolist(),
        "residual": residual.tolist(),
        "wa": wa.tolist(),
        "wb": wb.tolist(),
    }
    got = run_node("latent_node.js", job, tmp_path)
    for (p, q), result in zip(pairs, got["pairs"], strict=True):
        pt, qt = torch.from_numpy(p)[None], torch.from_numpy(q)[None]
        for t, lerped, slerped in zip(ts, result["lerp"], result["slerp"], strict=True):
            tt = torch.tensor([[t]])
            np.testing.assert_allclose(lerped, lerp(pt, qt, tt)[0].numpy(), atol=1e-5)
            np.testing.assert_allclose(slerped, slerp(pt, qt, tt)[0].numpy(), atol=1e-4)
    expected = along_directions(centre, directions, spread, amounts) + residual
    np.testing.assert_allclose(got["along"], expected, atol=1e-5)
    for t, mixed in zip(ts, got["mix"], strict=True):
        np.testing.assert_allclose(mixed, wa * (1 - t) + wb * t, atol=1e-7)


def test_the_pad_plays_only_where_the_server_plays_griffin_lim(
    studio_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """One phase a person hears: the pad is given the export manifest's Griffin-Lim
    settings (the server's own); with a vocoder in use it stays off and says why."""
    from ui import sound_pad
    from vae.synthesis.inference import Synthesiser
    from vae.vocoder.network import VocoderConfig, VocoderNet, save_vocoder, vocoder_dir

    ckpt = tmp_path / "demo"
    shutil.copytree(studio_root / "checkpoints" / "demo", ckpt)
    monkeypatch.setattr(sound_pad, "MODELS", tmp_path / "models")
    monkeypatch.setattr(sound_pad, "in_a_browser", lambda: True)
    # Where the bundle is not installed the pad is off for that reason instead.
    missing = f"in-browser sound is not installed: run `{sound_pad.INSTALL}` and reload"
    playable = None if sound_pad.RUNTIME.is_file() else missing
    synth = Synthesiser.load(ckpt)
    cfg = synth.config.replace(griffin_lim_momentum=0.5)  # not the default: read, not assumed
    cfg_file = ckpt / "config.json"
    data = json.loads(cfg_file.read_text())
    data["feature_config"]["griffin_lim_momentum"] = 0.5
    cfg_file.write_text(json.dumps(data))
    synth = Synthesiser.load(ckpt)
    assert synth.config == cfg and sound_pad.unavailable(synth) == playable
    phase = sound_pad._common(synth, ckpt, "pad")["phase"]
    assert (phase["method"], phase["n_iter"], phase["momentum"]) == ("griffin-lim", 32, 0.5)

    net = VocoderNet(VocoderConfig(cfg, width=8, layers=1))
    for won in (True, False):
        save_vocoder(vocoder_dir(ckpt), net, {"verdict": {"won": won}})
        synth = Synthesiser.load(ckpt)
        why = sound_pad.unavailable(synth)
        if won:  # the server plays the vocoder: the pad, with only Griffin-Lim, stays off
            assert synth.phase_method == "vocoder"
            assert why == (
                "this checkpoint's sound comes from its vocoder, and the in-browser player has "
                "only Griffin-Lim; here the server makes each sound"
            )
        else:  # it lost: Griffin-Lim on both sides, the pad plays
            assert synth.phase_method == "griffin-lim" and why == playable


def _worker(job: dict, feats: np.ndarray, tmp_path: Path) -> dict:
    """The pad's worker (sound_worker.js under node, ONNX Runtime stubbed to decode to
    ``feats``) answering one job."""
    job_file = {"job": job, "features": feats.ravel().tolist(), "shape": list(feats.shape)}
    return run_node("sound_worker_node.js", job_file, tmp_path)


@pytest.mark.parametrize("momentum", [0.9, 0.5])
def test_the_worker_takes_griffin_lims_settings_from_the_manifest(momentum, tmp_path: Path):
    """The worker's Griffin-Lim runs the iterations and momentum of the export manifest's
    phase block (the server's), not a copy of its own; a manifest whose phase is a vocoder
    is refused rather than played through Griffin-Lim."""
    cfg = F.get_preset("fsdd").replace(griffin_lim_momentum=0.99)  # what it must not use
    feats = F.waveform_to_features(_tone(cfg), cfg).numpy()  # (bins, frames)
    phase = {"method": "griffin-lim", "n_iter": 16, "momentum": momentum}
    job = {
        "id": 1,
        "modelUrl": "decoder.onnx",
        "wasmPaths": "",
        "z": [0.0],
        "weights": None,
        "config": cfg.to_dict(),
        "melPinv": None,
        "phase": phase,
        "quick": False,
        "liveIters": 4,
        "chunkIters": 4,
    }
    reply = _worker(job, feats, tmp_path)
    assert reply["shape"] == [cfg.n_bins, cfg.n_frames]  # the picture's rows: the decoder's
    heard = np.array(reply["wave"], dtype=np.float32)
    served = F.features_to_waveform(
        torch.from_numpy(feats), cfg.replace(griffin_lim_momentum=momentum), n_iter=16
    ).numpy()
    peak = np.abs(served).max()
    assert np.abs(heard - served).max() < 1e-2 * peak
    other = F.features_to_waveform(torch.from_numpy(feats), cfg).numpy()  # 0.99, 32 iterations
    assert np.abs(heard - other).max() > 5e-2 * peak
    refused = _worker({**job, "phase": {**phase, "method": "vocoder"}}, feats, tmp_path)
    assert refused == {"error": "the export's phase is vocoder; this player has only Griffin-Lim"}


def test_the_worker_says_when_the_model_file_did_not_load(tmp_path: Path):
    """A model file that does not load (its export removed: a 404) is reported as such, so
    the page asks Python for the current export instead of going silent."""
    cfg = F.get_preset("fsdd")
    feats = F.waveform_to_features(_tone(cfg), cfg).numpy()
    job = {
        "id": 1,
        "modelUrl": "models/missing/decoder.onnx?v=1",
        "wasmPaths": "",
        "z": [0.0],
        "weights": None,
        "config": cfg.to_dict(),
        "melPinv": None,
        "phase": {"method": "griffin-lim", "n_iter": 4, "momentum": 0.9},
        "quick": True,
        "liveIters": 4,
        "chunkIters": 4,
    }
    assert _worker(job, feats, tmp_path) == {
        "error": "could not load the model (failed to load external data file)",
        "load": True,
    }
