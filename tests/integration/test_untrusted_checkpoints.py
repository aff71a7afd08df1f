"""Untrusted checkpoints, as a user meets them: through the CLI and the app, not the library.

Each tampering of a copy of the ``studio_root`` checkpoint must give one ``error:`` line that
names the file (CLI, exit 1, no traceback) or an ``st.error`` (app, no exception), and must
never run code hidden in a pickle. The library-level checks are in ``test_checkpoints.py``.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.apptest import open_page
from tests.clirun import vae
from vae.dataset import preprocess
from vae.features import FeatureConfig


class _Trap:
    """Unpickling this touches ``marker``: proof that a pickle ran code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _pickle_payload(ckpt: Path) -> None:
    state = torch.load(ckpt / "model.pt", weights_only=True)
    torch.save({**state, "payload": _Trap(ckpt.parent / "code-ran")}, ckpt / "model.pt")


def _truncate(ckpt: Path) -> None:
    data = (ckpt / "model.pt").read_bytes()
    (ckpt / "model.pt").write_bytes(data[: len(data) // 3])


def _other_shape(ckpt: Path) -> None:
    """Weights of another model (a wider latent) under this config."""
    config = json.loads((ckpt / "config.json").read_text())
    config["model_config"]["latent_dim"] += 3
    (ckpt / "config.json").write_text(json.dumps(config))


def _torn_config(ckpt: Path) -> None:
    (ckpt / "config.json").write_text('{"format_version": 1, "model_con')


TAMPERINGS: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # name: (tamper, file named in the error, reason in the error)
    "pickle": (_pickle_payload, "model.pt", "refused"),
    "truncated": (_truncate, "model.pt", "truncated or corrupt"),
    "other-shape": (_other_shape, "model.pt", "do not fit the model"),
    "torn-config": (_torn_config, "config.json", "not readable JSON"),
}


@pytest.fixture
def workspace(studio_root: Path, tmp_path: Path) -> Path:
    shutil.copytree(studio_root, tmp_path / "ws")
    return tmp_path / "ws"


def _assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), last
    for needle in needles:
        assert needle in last, (needle, last)


@pytest.mark.slow
@pytest.mark.parametrize("tampering", sorted(TAMPERINGS))
def test_cli_refuses_a_tampered_checkpoint_with_one_line(workspace: Path, tampering: str) -> None:
    tamper, file, reason = TAMPERINGS[tampering]
    ckpt = workspace / "checkpoints" / "demo"
    tamper(ckpt)
    out = workspace / "out"
    commands = [
        ("sample", ckpt, "--out", out / "sample"),
        ("map", ckpt, "--out", out / "map.csv"),
        ("decode", ckpt, "--out", out / "decoded.wav"),
        ("evaluate", ckpt, workspace / "data" / "demo", "--json"),
    ]
    for command in commands:
        _assert_one_line_error(vae(*command, check=False), str(ckpt / file), reason)
    assert not (workspace / "checkpoints" / "code-ran").exists()
    assert not out.exists() or not any(out.rglob("*.*"))  # nothing half-made


@pytest.mark.slow
def test_cli_refuses_a_dataset_of_other_features(workspace: Path, demo_set_dir: Path) -> None:
    other = workspace / "data" / "wide"
    preprocess(demo_set_dir, other, FeatureConfig(sample_rate=8000, clip_samples=4096))
    ckpt = workspace / "checkpoints" / "demo"
    proc = vae("evaluate", ckpt, other, "--json", check=False)
    _assert_one_line_error(proc, str(ckpt), "n_fft", "re-preprocess")
    proc = vae("train", other, "--out", ckpt, "--resume", "--epochs", "3", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "error:" in proc.stderr and str(ckpt) in proc.stderr
    assert json.loads((ckpt / "config.json").read_text())["epoch"] == 2  # untouched


@pytest.mark.slow
@pytest.mark.parametrize("tampering", sorted(TAMPERINGS))
def test_app_pages_show_the_error_and_never_run_the_payload(
    workspace: Path, tampering: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tamper, file, reason = TAMPERINGS[tampering]
    tamper(workspace / "checkpoints" / "demo")
    monkeypatch.chdir(workspace)
    for page in ("explore", "interpolate", "synthesise", "evaluate", "home"):
        at = open_page(page)
        assert not at.exception, (page, at.exception)
        errors = " ".join(e.value for e in at.error)
        if page == "home":  # Home lists the workspace: it must open and say what is wrong
            assert "Traceback" not in errors
            continue
        assert file in errors and reason in errors, (page, errors)
    assert not (workspace / "checkpoints" / "code-ran").exists()
