"""Untrusted checkpoints, as a user meets them: through the CLI and the app, not the library.

Each tampering of a copy of the ``studio_root`` checkpoint must give one ``error:`` line that
names the file (CLI, exit 1, no traceback) or an ``st.error`` (app, no exception), and must
never run code hidden in a pickle. The library-level checks are in ``test_checkpoints.py``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.apptest import open_page
from tests.clirun import ROOT, vae
from tests.pickle_trap import Trap
from vae.audio.features import FeatureConfig
from vae.data.dataset import preprocess
from vae.storage import limits


def _pickle_payload(ckpt: Path) -> None:
    state = torch.load(ckpt / "model.pt", weights_only=True)
    torch.save({**state, "payload": Trap(ckpt.parent / "code-ran")}, ckpt / "model.pt")


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
        if "damaged" in errors:  # refused from its files alone: never opened by default...
            assert "Every checkpoint on disk is damaged" in errors, (page, errors)
            assert "checkpoints/demo" in errors, (page, errors)
            # ...and picked by hand, the page says the whole error
            at = open_page(page, **{"studio-checkpoint": "checkpoints/demo"})
            assert not at.exception, (page, at.exception)
            errors = " ".join(e.value for e in at.error)
        assert file in errors and reason in errors, (page, errors)
    assert not (workspace / "checkpoints" / "code-ran").exists()


# ------------------------------------------------------------------ hostile sizes (issue 17)
# A red team's files: each must be refused before its sizes are allocated, in one line that
# names the file and the field, with the child's peak memory under vae.storage.limits' ceiling.

PEAK = """
import atexit, os, sys
def peak():
    with open("/proc/self/status") as f:
        kb = [line.split()[1] for line in f if line.startswith("VmHWM:")]
    with open(os.environ["PEAK_FILE"], "w") as out:
        out.write(kb[0])
atexit.register(peak)
sys.argv[0] = "vae"
from vae.cli import main
sys.exit(main())
"""


def _vae_peak(*args: object, tmp: Path) -> tuple[subprocess.CompletedProcess, int]:
    """``python -m vae ARGS`` and its peak resident memory in bytes (VmHWM, read by itself)."""
    peak = tmp / "peak"
    proc = subprocess.run(
        [sys.executable, "-c", PEAK, *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PEAK_FILE": str(peak)},
    )
    return proc, int(peak.read_text()) * 1024


def _edit_config(ckpt: Path, edit: Callable[[dict], None], compact: bool = False) -> None:
    config = json.loads((ckpt / "config.json").read_text())
    edit(config)
    separators = (",", ":") if compact else None
    (ckpt / "config.json").write_text(json.dumps(config, separators=separators))


def _nested_config(ckpt: Path) -> None:
    (ckpt / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    (ckpt / "model.pt").write_bytes(b"")


def _huge_fft(ckpt: Path) -> None:
    def edit(config: dict) -> None:
        config["feature_config"].update(n_fft=2**30, clip_samples=2**30, hop_length=2**29)

    _edit_config(ckpt, edit)


def _million_labels(ckpt: Path) -> None:
    # Compact and empty: 3 bytes a name, so the file stays under the JSON size limit.
    _edit_config(ckpt, lambda c: c.update(label_names=[""] * 1_000_000), compact=True)


def _nan_weights(ckpt: Path) -> None:
    state = torch.load(ckpt / "model.pt", weights_only=True)
    name = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][name].view(-1)[0] = float("nan")
    torch.save(state, ckpt / "model.pt")


def _zip_members(file: Path, members: list[tuple[str, bytes, int, int, int]]) -> None:
    """A zip written by hand: (name, stored bytes, crc, size, method 0 stored / 8 deflated),
    so that a member of gigabytes of zeros is built from a repeated compressed block."""
    out, central = bytearray(), bytearray()
    for name, data, crc, size, method in members:
        raw = name.encode()
        fields = (method, 0, 0x21, crc, len(data), size, len(raw))
        central += struct.pack("<IHHHH", 0x02014B50, 20, 20, 0, fields[0])
        central += struct.pack("<HHIIIHHHHHII", *fields[1:], 0, 0, 0, 0, 0, len(out)) + raw
        out += struct.pack("<IHHH", 0x04034B50, 20, 0, method)
        out += struct.pack("<HHIIIHH", *fields[1:], 0) + raw + data
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central),
                      len(out), 0)  # fmt: skip
    file.write_bytes(bytes(out + central + end))


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _stored(name: str, data: bytes) -> tuple[str, bytes, int, int, int]:
    return (name, data, zlib.crc32(data), len(data), 0)


def zeros_bomb(file: Path, rows: int, dim: int = 16) -> None:
    """A latents.npz whose means declare (rows, dim) float32 zeros, deflated: each MiB of
    zeros is one compressed block repeated (a full flush makes blocks independent)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (rows, dim)}
    )
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = bytes(1 << 20)
    stream = head.compress(header.getvalue()) + head.flush(zlib.Z_FULL_FLUSH)
    repeat = body.compress(block) + body.flush(zlib.Z_FULL_FLUSH)
    blocks = rows * dim * 4 // len(block)
    crc = zlib.crc32(header.getvalue())
    for _ in range(blocks):
        crc = zlib.crc32(block, crc)
    data = stream + repeat * blocks + body.flush()
    size = len(header.getvalue()) + blocks * len(block)
    labels, ids = np.zeros(4, np.int64), np.array(["a", "b", "c", "d"])
    _zip_members(
        file,
        [
            ("means.npy", data, crc, size, 8),
            _stored("labels.npy", _npy(labels)),
            _stored("ids.npy", _npy(ids)),
        ],
    )


def _latents(means: object, labels: object, ids: object, **kw: object) -> Callable[[Path], None]:
    def tamper(ckpt: Path) -> None:
        buf = io.BytesIO()
        np.savez(buf, means=means, labels=labels, ids=ids, **kw)
        (ckpt / "latents.npz").write_bytes(buf.getvalue())

    return tamper


def _object_latents(ckpt: Path) -> None:
    means = np.empty(4, dtype=object)
    means[:] = [[0.0] * 4] * 4
    buf = io.BytesIO()
    np.savez(buf, means=means, labels=np.zeros(4, np.int64), ids=np.array(list("abcd")))
    (ckpt / "latents.npz").write_bytes(buf.getvalue())


ZEROS, LABELS, IDS = np.zeros((6, 4), np.float32), np.zeros(6, np.int64), np.array(list("abcdef"))
NAN = np.where(np.eye(6, 4) > 0, np.nan, 0).astype(np.float32)

HOSTILE: dict[str, tuple[Callable[[Path], None], str, str, tuple[str, ...]]] = {
    # name: (tamper, file named, what the line says, commands run)
    "nested-config": (_nested_config, "config.json", "nested too deep", ("all",)),
    "n_fft-2**30": (_huge_fft, "config.json", "n_fft=1073741824", ("sample", "decode")),
    "million-labels": (_million_labels, "config.json", "label_names", ("sample", "interpolate")),
    "nan-weights": (_nan_weights, "model.pt", "NaN", ("sample", "decode")),
    "object-latents": (_object_latents, "latents.npz", "object", ("map", "decode")),
    "latents-(N,3)": (_latents(ZEROS[:, :3], LABELS, IDS), "latents.npz", "latent_dim 4",
                      ("map", "decode")),
    "nan-latents": (_latents(NAN, LABELS, IDS), "latents.npz", "NaN", ("map", "decode")),
    "1-d-latents": (_latents(ZEROS[:, 0], LABELS, IDS), "latents.npz", "not (N, latent_dim)",
                    ("map", "decode")),
    "short-ids": (_latents(ZEROS, LABELS, IDS[:4]), "latents.npz", "ids of shape (4,)",
                  ("map", "decode")),
    "empty-latents": (_latents(ZEROS[:0], LABELS[:0], IDS[:0]), "latents.npz", "0 rows",
                      ("map", "decode")),
    "bomb-0.5MB": (lambda c: zeros_bomb(c / "latents.npz", 2**23), "latents.npz", "means",
                   ("map", "decode")),
    "bomb-2MB": (lambda c: zeros_bomb(c / "latents.npz", 2**25), "latents.npz", "means",
                 ("map", "decode")),
}  # fmt: skip


def _command(name: str, ws: Path, ckpt: Path) -> tuple[object, ...]:
    out = ws / "out" / name
    clips = sorted((ws / "data" / "demo").glob("*.npy"))  # any file: refused before it is read
    wav = next((ws / "data").rglob("*.wav"), clips[0] if clips else ws / "a.wav")
    return {
        "sample": ("sample", ckpt, "--out", out),
        "decode": ("decode", ckpt, "--label", "tone", "--out", out / "d.wav"),
        "map": ("map", ckpt, "--out", out / "map.csv"),
        "evaluate": ("evaluate", ckpt, ws / "data" / "demo", "--json"),
        "reconstruct": ("reconstruct", ckpt, wav, "--out", out),
        "interpolate": ("interpolate", ckpt, wav, wav, "--out", out),
        "export": ("export", ckpt, "--out", out),
    }[name]


ALL = ("sample", "decode", "map", "reconstruct", "interpolate", "evaluate", "export")


@pytest.mark.slow
@pytest.mark.parametrize("case", list(HOSTILE))
def test_cli_refuses_hostile_sizes_in_one_line_under_the_ceiling(
    workspace: Path, case: str, tmp_path: Path
) -> None:
    tamper, file, what, commands = HOSTILE[case]
    ckpt = workspace / "checkpoints" / "demo"
    tamper(ckpt)
    for command in ALL if commands == ("all",) else commands:
        proc, peak = _vae_peak(*_command(command, workspace, ckpt), tmp=tmp_path)
        assert proc.returncode == 1, (command, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr, (command, proc.stderr[-2000:])
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, (command, lines)
        assert lines[0].startswith(f"error: {ckpt / file}: "), (command, lines[0])
        assert what in lines[0], (command, what, lines[0])
        assert peak < limits.MEMORY_CEILING, (command, f"{peak / 2**20:.0f} MiB")


@pytest.mark.slow
def test_cli_refuses_a_hostile_dataset_in_one_line(workspace: Path, tmp_path: Path) -> None:
    data, ckpt = workspace / "data" / "demo", workspace / "checkpoints" / "demo"
    info = json.loads((data / "config.json").read_text())
    info["feature_config"].update(n_fft=2**30, clip_samples=2**30)
    (data / "config.json").write_text(json.dumps(info))
    for proc in (
        _vae_peak("evaluate", ckpt, data, "--json", tmp=tmp_path),
        _vae_peak("train", data, "--out", workspace / "new", "--epochs", "1", tmp=tmp_path),
    ):
        _assert_one_line_error(proc[0], str(data / "config.json"), "n_fft=1073741824")
        assert proc[1] < limits.MEMORY_CEILING
