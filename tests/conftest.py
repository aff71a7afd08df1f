"""Shared pytest fixtures. Each block says which tests it serves; add new blocks below."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vae.audio.features import FeatureConfig

# --- markers: `pytest -m "not slow"` is the inner loop ---------------------------------------
# tests/e2e drive chromium: they are `browser` and `slow` by where they live; other slow tests
# carry @pytest.mark.slow (or a module-level pytestmark) themselves.


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "e2e" in item.path.parts:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)


# --- sources / dataset fixtures (tests/unit/test_sources.py, tests/unit/test_dataset.py) ------

FSDD_RECORDINGS = Path(__file__).resolve().parents[1].parent / "shared/datasets/fsdd/recordings"


@pytest.fixture(scope="session")
def fsdd_recordings() -> Path:
    """The real Free Spoken Digit recordings (read only, never copied); skip when absent."""
    if not FSDD_RECORDINGS.is_dir() or not any(FSDD_RECORDINGS.glob("*.wav")):
        pytest.skip(f"FSDD recordings not found at {FSDD_RECORDINGS}")
    return FSDD_RECORDINGS


@pytest.fixture(scope="session")
def tiny_feature_config() -> FeatureConfig:
    """A small, fast feature setting for 8 kHz test clips: 128 bins x 33 frames."""
    return FeatureConfig(sample_rate=8000, clip_samples=4096, n_fft=256, hop_length=128)


@pytest.fixture(scope="session")
def demo_set_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic demo set (5 classes x 6 clips), built once per session; do not modify."""
    from vae.data.sources import make_demo_set

    return make_demo_set(tmp_path_factory.mktemp("demo") / "demo", n_per_class=6, seed=0)


@pytest.fixture(scope="session")
def demo_dataset_dir(
    tmp_path_factory: pytest.TempPathFactory, demo_set_dir: Path, tiny_feature_config
) -> Path:
    """``demo_set_dir`` preprocessed with ``tiny_feature_config``; copy it before tampering."""
    from vae.data.dataset import preprocess

    out = tmp_path_factory.mktemp("datasets") / "demo"
    preprocess(demo_set_dir, out, tiny_feature_config, val_fraction=0.2, seed=0)
    return out


@pytest.fixture(scope="session")
def quick_judge_dir(tmp_path_factory: pytest.TempPathFactory, demo_dataset_dir: Path) -> Path:
    """A real judge folder of ``demo_dataset_dir``'s 5 labels, trained one epoch (about a
    second): for the tests of loading, refusing and hearing that ask nothing of its
    accuracy; read only."""
    from vae.data.dataset import load_dataset
    from vae.evaluation.judge_training import JudgeTraining, train_judge

    out = tmp_path_factory.mktemp("judges") / "quick"
    train_judge(load_dataset(demo_dataset_dir), out, JudgeTraining(epochs=1, batch_size=8))
    return out


@pytest.fixture
def write_tone() -> Callable[..., Path]:
    """Write a decaying harmonic tone to ``path`` with soundfile; returns the path.

    Call as ``write_tone(path, seconds=0.5, sample_rate=8000, freq=440.0, channels=1,
    subtype="PCM_16")``; the format follows the suffix (.wav, .flac, .ogg...).
    """

    def write(
        path: Path,
        seconds: float = 0.5,
        sample_rate: int = 8000,
        freq: float = 440.0,
        channels: int = 1,
        subtype: str = "PCM_16",
    ) -> Path:
        t = np.arange(int(seconds * sample_rate)) / sample_rate
        wave = (
            0.5
            * np.exp(-3 * t)
            * (np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(6 * np.pi * freq * t))
        )
        data = np.stack([wave * (1 - 0.2 * c) for c in range(channels)], axis=1)  # (samples, ch)
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), data.astype(np.float32), sample_rate, subtype=subtype)
        return path

    return write


# --- app fixtures (tests/app/) ----------------------------------------------------------------


@pytest.fixture(scope="session")
def studio_root(tmp_path_factory: pytest.TempPathFactory, demo_set_dir: Path) -> Path:
    """A workspace as the app sees it from its working directory: ``data/demo`` (the demo
    set, 5 labels, 128 x 33 features) and ``checkpoints/demo`` (a tiny conditional VAE
    trained 2 epochs on it). Shared by the page tests: copy it before writing into it."""
    from vae.data.dataset import preprocess
    from vae.training.train import train
    from vae.training.train_config import TrainConfig

    root = tmp_path_factory.mktemp("studio")
    cfg = FeatureConfig(sample_rate=8000, clip_samples=4096, n_fft=256, hop_length=128)
    preprocess(demo_set_dir, root / "data" / "demo", cfg, val_fraction=0.2, seed=0)
    train(
        root / "data" / "demo",
        root / "checkpoints" / "demo",
        train_config=TrainConfig(epochs=2, batch_size=8, log_every=1, device="cpu", threads=1),
        model_overrides={"channels": (8, 16), "latent_dim": 4, "conditional": True},
    )
    return root


@pytest.fixture
def studio_page(studio_root: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    """Open a page of the app in the ``studio_root`` workspace (read only), checked to run
    without an exception: ``studio_page("explore", **session_state)``."""
    from tests.apptest import open_page

    monkeypatch.chdir(studio_root)

    def opener(page: str, **state: object):
        at = open_page(page, **state)
        assert not at.exception, at.exception
        return at

    return opener


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty workspace as the working folder (``tmp_path / "work"``)."""
    root = tmp_path / "work"
    root.mkdir()
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def studio_copy(studio_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A private copy of the studio workspace as the working directory, for tests that write
    or train in it; every training run started through ``vae.jobs.runner`` is killed afterwards,
    whatever the test did."""
    import shutil
    import signal

    from vae.jobs import runner as jobs

    root = tmp_path / "studio"
    shutil.copytree(studio_root, root)
    monkeypatch.chdir(root)
    yield root
    for child in list(jobs._CHILDREN.values()):
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    jobs._CHILDREN.clear()


# --- a recording as a browser makes it (tests/app/test_page_explore.py, test_page_interpolate.py,
# tests/e2e/test_browser_voice.py) ---------------------------------------------------------------

RECORDING_RATE = 48_000  # a browser's usual capture rate; st.audio_input(sample_rate=None)


def write_recording(path: Path) -> Path:
    """A spoken digit as a browser records it: a real FSDD clip (else a synthetic
    voice-like tone) resampled to 48 kHz, 16-bit mono WAV, padded with 0.3 s of silence
    either side as a person pressing record and stop leaves it."""
    from vae.audio.io import resample

    real = sorted(FSDD_RECORDINGS.glob("3_*.wav"))[:1] if FSDD_RECORDINGS.is_dir() else []
    if real:
        wave, sr = sf.read(str(real[0]), dtype="float32")
    else:  # a 0.5 s "vowel": a 140 Hz buzz through two formants, decaying
        sr = 8000
        t = np.arange(int(0.5 * sr)) / sr
        wave = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 700, 1200), 1))
        wave = (0.4 * np.exp(-2 * t) * wave).astype(np.float32)
    wave = resample(np.asarray(wave, np.float32), sr, RECORDING_RATE)
    pad = np.zeros(int(0.3 * RECORDING_RATE), np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.concatenate([pad, wave, pad]), RECORDING_RATE, subtype="PCM_16")
    return path


@pytest.fixture(scope="session")
def recording_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``write_recording`` once per session (read only)."""
    return write_recording(tmp_path_factory.mktemp("voice") / "recording.wav")
