"""Nothing lost: real processes killed with SIGKILL while preprocessing, training and saving a
checkpoint, and real writes failing for want of space, leave the previous files loadable.

Each crash runs ``python -m vae ...`` in a child process with :data:`HOOK` in front of it: the
hook wraps one library call so that the child, on reaching the chosen spot (the k-th rename
onto ``model.pt``, the k-th file read, ...), writes a marker file and waits. The test then
kills the child's whole process group with SIGKILL, so the kill lands exactly there every run.
Nothing in ``vae/`` knows about this: the hooks live in the child's ``-c`` script only.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vae.audio.features import FeatureConfig
from vae.data.dataset import load_dataset, preprocess
from vae.data.sources import make_demo_set
from vae.model import checkpoints as ck
from vae.storage.files import DiskFullError
from vae.training.loop import encode_means
from vae.training.run_checkpoint import save_epoch
from vae.training.train import train
from vae.training.train_config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
# 8 kHz, 4032 samples, n_fft 128, hop 64 -> 64 bins x 64 frames.
FEATURES = FeatureConfig(sample_rate=8000, clip_samples=4032, n_fft=128, hop_length=64)
TINY = {"channels": (8, 16, 32), "latent_dim": 4}
# The same features and model on the command line.
PREPROCESS_ARGS = (
    "--preset seed --sample-rate 8000 --clip-seconds 0.504 --n-fft 128 --hop 64 --n-mels 0 "
    "--val-fraction 0.2"
).split()
TRAIN_ARGS = "--batch-size 8 --channels 8,16,32 --latent-dim 4 --beta-warmup-epochs 2".split()


def _cfg(epochs: int) -> TrainConfig:
    """What TRAIN_ARGS trains, on one thread (the machine may be busy), for in-process runs."""
    return TrainConfig(epochs=epochs, batch_size=8, beta_warmup_epochs=2, threads=1)


HOOK = r"""
import os, resource, signal, sys, time
from pathlib import Path

import vae.audio.io, vae.cli, vae.storage.files

def pause_here():
    # Tell the test the child is at the spot, then wait for its SIGKILL.
    Path(os.environ["CRASH_MARKER"]).write_text(str(os.getpid()))
    time.sleep(600)

def wrap(owner, attr, name, nth, pick):
    real, calls = getattr(owner, attr), [0]
    def hooked(*args, **kw):
        if name in Path(str(pick(args))).name:
            calls[0] += 1
            if calls[0] == nth:
                pause_here()
        return real(*args, **kw)
    setattr(owner, attr, hooked)

SPOTS = {  # where: (owner, function, which argument names the file)
    "replace": (os, "replace", lambda a: a[1]),  # before a temp file is renamed over a file
    "rename": (os, "rename", lambda a: a[0]),  # before a folder is renamed
    "read": (vae.audio.io, "read_audio", lambda a: a[0]),  # before a source file is read
    "rows": (vae.storage.files.NpyRows, "write", lambda a: a[0].path),  # a worker writing rows
    "csv": (vae.storage.files, "write_csv", lambda a: a[0]),  # before a csv is written
}
if os.environ.get("CRASH_AT"):
    where, name, nth = os.environ["CRASH_AT"].split(":")
    wrap(*SPOTS[where][:2], name, int(nth), SPOTS[where][2])
if sys.argv[1] == "train":  # one thread, as in the in-process runs: steadier on a busy machine
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
if os.environ.get("FSIZE_LIMIT"):  # files may not grow past this: writes fail with EFBIG
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limit = int(os.environ["FSIZE_LIMIT"])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.exit(vae.cli.main(sys.argv[1:]))
"""


# ------------------------------------------------------------------------------ helpers


def _child(args: list[str], tmp_path: Path, **env: str) -> subprocess.Popen:
    """``python -m vae ARGS`` under HOOK in a new process group; stderr to a file."""
    log = (tmp_path / "child.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-c", HOOK, *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=log,
        stderr=log,
        start_new_session=True,  # killpg reaches preprocessing's worker processes too
    )


def _kill_at(args: list[str], spot: str, tmp_path: Path) -> None:
    """Run ``python -m vae ARGS`` and SIGKILL it, workers included, once it reaches ``spot``
    ("where:file name part:nth call")."""
    marker = tmp_path / "at-the-spot"
    proc = _child(args, tmp_path, CRASH_AT=spot, CRASH_MARKER=str(marker))
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        log = (tmp_path / "child.log").read_text()
        assert marker.exists(), f"never reached {spot} (exit {proc.poll()}): {log[-800:]}"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _run(args: list[str], tmp_path: Path, **env: str) -> tuple[int, str]:
    """(exit code, stderr + stdout) of ``python -m vae ARGS`` under HOOK."""
    proc = _child(args, tmp_path, **env)
    assert proc.wait(timeout=120) is not None
    return proc.returncode, (tmp_path / "child.log").read_text()


def _error_line(log: str) -> str:
    """The CLI's closing ``error: ...`` line, which must be its last output.

    A progress bar cut short leaves no newline, so the error may follow it on one line.
    """
    last = log.rstrip("\n").rsplit("\n", 1)[-1]
    return last[last.rindex("error: ") :] if "error: " in last else last


def _files(folder: Path) -> dict[str, bytes]:
    """Every file of ``folder`` by name, with its bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _leftovers(folder: Path) -> list[str]:
    """Hidden temp files or folders of ``folder`` beside it and inside it."""
    beside = [p.name for p in folder.parent.glob(f".{folder.name}.*")]
    inside = [p.name for p in folder.glob(".*.tmp")] if folder.is_dir() else []
    return sorted(beside + inside)


def _epochs(out: Path) -> list[int]:
    return [r["epoch"] for r in ck.read_metrics(out) if r["event"] == "epoch"]


def _assert_sound(out: Path, epoch: int) -> ck.Checkpoint:
    """The checkpoint in ``out`` loads, is at ``epoch`` and holds only finite weights."""
    loaded = ck.load_checkpoint(out)
    assert loaded.epoch == epoch
    assert all(torch.isfinite(t).all() for t in loaded.model.state_dict().values())
    assert ck.read_latents(out)["means"].shape == (20, 4)
    return loaded


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ "wavs": 20 clips (reader threads); "many": 130 clips (worker processes, >= 128);
    "data": "wavs" preprocessed (16 train, 4 val); "ckpt": one epoch trained on it."""
    root = tmp_path_factory.mktemp("crash")
    make_demo_set(root / "wavs", n_per_class=4, seed=0)
    make_demo_set(root / "many", n_per_class=26, seed=1)
    preprocess(root / "wavs", root / "data", FEATURES, val_fraction=0.2, seed=0)
    train(root / "data", root / "ckpt", train_config=_cfg(1), model_overrides=TINY)
    return {name: root / name for name in ("wavs", "many", "data", "ckpt")}


# ------------------------------------------------------------------------------ preprocessing

FRESH_SPOTS = {
    "reading": ("wavs", "read:.wav:5"),  # 5th source file, reader threads
    "writing rows": ("many", "rows:.npy:1"),  # worker processes writing rows in place
    "writing manifest": ("wavs", "csv:manifest.csv:1"),  # arrays done, manifest next
}


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(FRESH_SPOTS))
def test_preprocess_killed_into_a_fresh_folder_leaves_nothing(
    sets: dict[str, Path], tmp_path: Path, stage: str
) -> None:
    src, spot = FRESH_SPOTS[stage]
    out = tmp_path / "ds"
    _kill_at(["preprocess", str(sets[src]), "--out", str(out), *PREPROCESS_ARGS], spot, tmp_path)
    assert not out.exists()  # the half-built dataset is hidden beside it, never at `out`
    assert len(_leftovers(out)) == 1
    fix = f"re-run `python -m vae preprocess SRC --out {out}`"
    with pytest.raises(ValueError, match=f"^{out}: no dataset folder here; {fix}$"):
        load_dataset(out)
    # Running it again succeeds and sweeps the dead run's folder away.
    preprocess(sets[src], out, FEATURES, val_fraction=0.2)
    assert len(load_dataset(out)) == {"wavs": 20, "many": 130}[src]
    assert _leftovers(out) == []


EXISTING_SPOTS = {
    **FRESH_SPOTS,
    # The swap: the old dataset renamed aside, the new one not yet renamed into place.
    "swapping folders": ("wavs", "rename:.ds.tmp-:1"),
}


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(EXISTING_SPOTS))
def test_preprocess_killed_over_a_dataset_keeps_it_byte_identical(
    sets: dict[str, Path], tmp_path: Path, stage: str
) -> None:
    src, spot = EXISTING_SPOTS[stage]
    out = tmp_path / "ds"
    shutil.copytree(sets["data"], out)
    before, fingerprint = _files(out), load_dataset(out).fingerprint
    replace = ["preprocess", str(sets[src]), "--out", str(out), "--overwrite", *PREPROCESS_ARGS]
    _kill_at(replace, spot, tmp_path)
    if stage == "swapping folders":
        assert not out.exists()  # killed between the two renames: loading puts it back
    ds = load_dataset(out)
    assert ds.fingerprint == fingerprint and len(ds) == 20
    assert _files(out) == before
    preprocess(sets[src], out, FEATURES, val_fraction=0.2, overwrite=True)
    assert len(load_dataset(out)) == {"wavs": 20, "many": 130}[src]
    assert _leftovers(out) == []


# ------------------------------------------------------------------------------ checkpoints

# Killed inside the save of epoch `saving` of 3, before the rename of one of its files:
# (file, saving, epoch of the checkpoint left behind).
SAVE_SPOTS = [("model.pt", 2, 1), ("config.json", 2, 2), ("latents.npz", 2, 2),
              ("latents.npz", 3, 3)]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("name", "saving", "kept"), SAVE_SPOTS)
def test_sigkill_inside_checkpoint_save_keeps_a_loadable_checkpoint_and_resumes(
    sets: dict[str, Path], tmp_path: Path, name: str, saving: int, kept: int
) -> None:
    out = tmp_path / "ck"
    args = ["train", str(sets["data"]), "--out", str(out), "--epochs", "3", *TRAIN_ARGS]
    _kill_at(args, f"replace:{name}:{saving}", tmp_path)
    assert list(out.glob(f".{name}.*.tmp")), "the kill should land with the temp file written"
    _assert_sound(out, kept)
    # An epoch's metrics line precedes its save; resuming drops it if the save did not finish.
    assert _epochs(out) == list(range(1, saving + 1))
    result = train(sets["data"], out, train_config=_cfg(3), resume=True)
    assert [r["epoch"] for r in result.history] == list(range(kept + 1, 4))
    assert _epochs(out) == [1, 2, 3]
    assert _leftovers(out) == [] and not (out / ".lock").exists()
    final = _assert_sound(out, 3)
    # latents.npz is that of the final model, even when the kill left an older one behind.
    x = torch.from_numpy(np.asarray(load_dataset(sets["data"]).features, dtype=np.float32))
    means = encode_means(final.model, x, None, torch.device("cpu")).numpy()  # (20, 4)
    np.testing.assert_allclose(ck.read_latents(out)["means"], means, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------ divergence


@pytest.mark.slow
def test_real_divergence_stops_with_a_message_and_keeps_the_last_good_checkpoint(
    sets: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "ck"
    shutil.copytree(sets["ckpt"], out)
    before = _files(out)
    # lr 1e30: the first step of epoch 2 throws the weights so far the next loss is NaN.
    args = ["train", str(sets["data"]), "--out", str(out), "--resume", "--epochs", "3"]
    code, log = _run([*args, "--lr", "1e30"], tmp_path)
    assert code == 1 and "Traceback" not in log
    assert _error_line(log) == (
        f"error: loss became nan in batch 2 at epoch 2; the checkpoint of epoch 1 in {out} "
        "is kept: resume it with a lower --lr (now 1e+30) or a longer beta warm-up"
    )
    after = _files(out)
    del before["metrics.jsonl"], after["metrics.jsonl"]  # epoch 2's step lines, dropped below
    assert after == before and _leftovers(out) == [] and not (out / ".lock").exists()
    _assert_sound(out, 1)
    assert train(sets["data"], out, train_config=_cfg(2), resume=True).epoch == 2
    assert _epochs(out) == [1, 2]


# ------------------------------------------------------------------------------ disk full

LIMIT = 200_000  # bytes: above metrics, configs and latents, below model.pt (~550 kB)


def _no_space(log: str, path: Path, kept: str, why: str) -> None:
    """The CLI printed one line naming ``path`` and what was kept, and no traceback."""
    assert "Traceback" not in log
    assert _error_line(log) == (
        f"error: no space left writing {path} ({why}); the previous {kept} is kept; "
        "free some space and try again"
    )


def _train_over_full_disk(sets: dict[str, Path], out: Path, tmp_path: Path, **env: str) -> str:
    """Resume the one-epoch checkpoint ``out`` where model.pt cannot be written; check the
    old checkpoint survived whole; returns the CLI's output."""
    before = _files(out)
    args = ["train", str(sets["data"]), "--out", str(out), "--resume", "--epochs", "2"]
    code, log = _run(args, tmp_path, **env)
    assert code == 1
    # Every file byte-identical: metrics.jsonl too, its line for the unsaved epoch dropped.
    assert _files(out) == before and _leftovers(out) == [] and not (out / ".lock").exists()
    _assert_sound(out, 1)
    return log


def _resume_after(sets: dict[str, Path], out: Path) -> None:
    """With space again, resuming finishes epoch 2."""
    assert train(sets["data"], out, train_config=_cfg(2), resume=True).epoch == 2
    assert _epochs(out) == [1, 2]


def _preprocess_over_full_disk(src: Path, out: Path, tmp_path: Path, **env: str) -> str:
    """Preprocess ``src`` over the dataset ``out`` where it cannot fit; check the old one
    survived byte for byte; returns the CLI's output."""
    before = _files(out)
    replace = ["preprocess", str(src), "--out", str(out), "--overwrite", *PREPROCESS_ARGS]
    code, log = _run(replace, tmp_path, **env)
    assert code == 1
    assert _files(out) == before and _leftovers(out) == []
    assert len(load_dataset(out)) == 20
    return log


@pytest.mark.slow
def test_file_size_limit_while_saving_a_checkpoint_keeps_the_previous_one(
    sets: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "ck"
    shutil.copytree(sets["ckpt"], out)
    assert (out / ck.WEIGHTS_FILE).stat().st_size > LIMIT
    log = _train_over_full_disk(sets, out, tmp_path, FSIZE_LIMIT=str(LIMIT))
    _no_space(log, out / ck.WEIGHTS_FILE, "model.pt", "File too large")
    _resume_after(sets, out)


@pytest.mark.slow
def test_file_size_limit_while_preprocessing_keeps_the_previous_dataset(
    sets: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "ds"
    shutil.copytree(sets["data"], out)
    assert (out / "features.npy").stat().st_size < 2 * LIMIT  # fails midway through it
    log = _preprocess_over_full_disk(sets["wavs"], out, tmp_path, FSIZE_LIMIT=str(LIMIT // 2))
    _no_space(log, out, "dataset", "File too large")


def _mount_tmpfs(where: Path, size: int) -> None:
    """Mount a tmpfs of ``size`` bytes at ``where``, or skip saying why not."""
    if os.geteuid() != 0:
        pytest.skip("a real full disk needs root to mount a small tmpfs")
    if shutil.which("mount") is None:
        pytest.skip("a real full disk needs the mount command")
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")


def _size(folder: Path) -> int:
    """Bytes ``folder``'s files take on a tmpfs (whole 4 KiB pages)."""
    return sum(math.ceil(p.stat().st_size / 4096) * 4096 for p in folder.iterdir())


@pytest.fixture
def small_disk(tmp_path: Path):
    """A function mounting a tmpfs of a given size at tmp_path/disk; unmounted afterwards."""
    where = tmp_path / "disk"

    def mount(size: int) -> Path:
        _mount_tmpfs(where, size)
        return where

    yield mount
    if where.is_dir() and os.path.ismount(where):
        subprocess.run(["umount", str(where)], check=True)


@pytest.mark.slow
def test_no_space_left_while_saving_a_checkpoint_keeps_the_previous_one(
    sets: dict[str, Path], tmp_path: Path, small_disk
) -> None:
    # Room for the old checkpoint and half a model.pt more.
    disk = small_disk(_size(sets["ckpt"]) + (sets["ckpt"] / ck.WEIGHTS_FILE).stat().st_size // 2)
    out = disk / "ck"
    shutil.copytree(sets["ckpt"], out)
    log = _train_over_full_disk(sets, out, tmp_path)
    _no_space(log, out / ck.WEIGHTS_FILE, "model.pt", "No space left on device")
    shutil.move(out, tmp_path / "ck")  # a disk with room again
    _resume_after(sets, tmp_path / "ck")


@pytest.mark.slow
def test_no_space_left_while_preprocessing_keeps_the_previous_dataset(
    sets: dict[str, Path], tmp_path: Path, small_disk
) -> None:
    # Room for the old dataset and 256 kB more; 130 clips take 3 MB (worker processes).
    disk = small_disk(_size(sets["data"]) + 256 * 1024)
    out = disk / "ds"
    shutil.copytree(sets["data"], out)
    log = _preprocess_over_full_disk(sets["many"], out, tmp_path)
    _no_space(log, out, "dataset", "No space left on device")


def test_a_failed_save_takes_its_metrics_line_back_at_once_even_with_no_space_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """4 KB free: model.pt fails, and so would rewriting metrics.jsonl without the line (what
    ``trim_metrics`` does); the line goes at once all the same, by cutting the file back."""
    out = tmp_path / "ck"
    out.mkdir()
    metrics = out / ck.METRICS_FILE
    metrics.write_text('{"epoch": 1, "loss": 1.0}\n')
    before = metrics.read_bytes()

    def no_space(*args, **kwargs):
        raise DiskFullError(out / ck.WEIGHTS_FILE, OSError(errno.ENOSPC, "full"))

    monkeypatch.setattr(ck, "save_checkpoint", no_space)
    monkeypatch.setattr(ck, "atomic_write_text", no_space)  # no room to rewrite metrics either
    with pytest.raises(OSError, match="no space left writing .*model.pt"):
        save_epoch(
            out,
            {"epoch": 2, "loss": 0.5},
            model=None,
            optimizer=None,
            feature_config=FEATURES,
            model_config=None,
            train_config=_cfg(2),
            label_names=[],
            dataset_info={},
            step=8,
        )
    assert metrics.read_bytes() == before  # at once, not at the next resume
