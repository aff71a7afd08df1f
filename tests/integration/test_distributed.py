"""`python -m vae train` under torchrun: two gloo processes on the CPU share every global batch,
write one checkpoint, and end with the weights a one-process run with the same seed and
--batch-size reaches; resume and a SIGTERM to one rank work as in one process."""

from __future__ import annotations

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
import torch.distributed as tdist

from tests.torchrun_helpers import ARGS, ATOL, ENV, ROOT, TINY, epoch_records, max_diff
from tests.torchrun_helpers import one_process_config as _cfg
from vae.data.batches import FeatureFile
from vae.data.dataset import load_dataset
from vae.model import checkpoints as ck
from vae.model.prior import PRIOR_FILE
from vae.training import distributed as dist
from vae.training.loop import Trainer, TrainerSetup
from vae.training.train import build_model_config, train
from vae.training.train_config import TrainConfig


def _torchrun(*args: object, nproc: int = 2) -> list[str]:
    run = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
    ]
    return [*run, "-m", "vae", "train", *map(str, args), *ARGS]


def _run(*args: object) -> subprocess.CompletedProcess:
    done = subprocess.run(
        _torchrun(*args), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, demo_dataset_dir: Path) -> dict[str, Path]:
    """2 epochs with 2 ranks ("ddp") and with one process in-process ("one")."""
    root = tmp_path_factory.mktemp("ddp")
    done = _run(demo_dataset_dir, "--out", root / "ddp", "--epochs", 2)
    (root / "ddp.log").write_text(done.stdout + done.stderr)
    train(demo_dataset_dir, root / "one", train_config=_cfg(2), model_overrides=TINY)
    return {"root": root, "data": demo_dataset_dir, "ddp": root / "ddp", "one": root / "one"}


@pytest.mark.slow
def test_two_ranks_write_one_checkpoint(runs: dict[str, Path]) -> None:
    out = runs["ddp"]
    assert sorted(p.name for p in out.iterdir()) == [
        ck.CONFIG_FILE, ck.LATENTS_FILE, ck.METRICS_FILE, ck.WEIGHTS_FILE, PRIOR_FILE
    ]  # fmt: skip
    loaded = ck.load_checkpoint(out)
    assert loaded.epoch == 2 and TrainConfig.from_dict(loaded.train_config) == _cfg(2)
    records = epoch_records(out)
    assert [r["epoch"] for r in records] == [1, 2]  # one writer: no line twice
    assert [r["event"] for r in ck.read_metrics(out)].count("step") == 0  # 8 steps < log_every
    ds = load_dataset(runs["data"])
    n = len(ds.split_indices("train"))
    # Each epoch's global batches (25 clips by 8: 8, 8, 8, 1) split by the public rule.
    sizes = [len(range(n)[i : i + 8]) for i in range(0, n, 8)]
    expect = [sum(len(range(s)[dist.shard(s, r, 2)]) for s in sizes) for r in (0, 1)]
    assert expect == [12, 13] and all(r["rank_clips"] == expect for r in records)
    assert all(r["world_size"] == 2 for r in records)
    latents = ck.read_latents(out)
    assert latents["ids"].tolist() == ds.ids and latents["means"].shape == (len(ds), 4)
    log = (runs["root"] / "ddp.log").read_text()
    assert log.count("checkpoint at epoch 2") == 1  # rank 0 speaks for both


@pytest.mark.slow  # its fixture runs torchrun: two ranks, each a python with torch
def test_two_ranks_equal_one_process(runs: dict[str, Path]) -> None:
    assert max_diff(runs["ddp"], runs["one"]) < ATOL
    ddp, one = epoch_records(runs["ddp"]), epoch_records(runs["one"])
    for a, b in zip(ddp, one, strict=True):
        for key in ("train_loss", "train_recon", "train_kl", "val_loss", "val_recon", "val_kl"):
            assert a[key] == pytest.approx(b[key], rel=1e-4), key
    np.testing.assert_allclose(
        ck.read_latents(runs["ddp"])["means"], ck.read_latents(runs["one"])["means"], atol=ATOL
    )


@pytest.mark.slow
def test_resume_under_torchrun_continues_like_one_process(runs: dict[str, Path]) -> None:
    root = runs["root"]
    shutil.copytree(runs["ddp"], root / "ddp3")
    shutil.copytree(runs["one"], root / "one3")
    _run(runs["data"], "--out", root / "ddp3", "--epochs", 3, "--resume")
    train(runs["data"], root / "one3", train_config=_cfg(3), resume=True)
    assert [r["epoch"] for r in epoch_records(root / "ddp3")] == [1, 2, 3]
    assert ck.load_checkpoint(root / "ddp3").epoch == 3
    assert max_diff(root / "ddp3", root / "one3") < ATOL


def _rank_pid(agent: int, rank: int) -> int | None:
    """Pid of the worker of ``rank`` that the torchrun process ``agent`` started."""
    try:
        children = Path(f"/proc/{agent}/task/{agent}/children").read_text().split()
    except OSError:
        return None
    for pid in children:
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return int(pid)
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds ranks through /proc")
def test_sigterm_to_one_rank_stops_both_at_the_same_batch(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "ck"
    proc = subprocess.Popen(
        _torchrun(runs["data"], "--out", out, "--epochs", 1000),
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / ck.CONFIG_FILE).is_file():  # written last: epoch 1 is saved
                break
            time.sleep(0.05)
        pid = _rank_pid(proc.pid, 1)
        assert proc.poll() is None and pid is not None, "training ended before the signal"
        os.kill(pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, stderr[-3000:]  # both ranks returned: a clean stop, no hang
    saved = ck.load_checkpoint(out).epoch
    assert 1 <= saved < 1000
    assert [r["epoch"] for r in epoch_records(out)] == list(range(1, saved + 1))
    assert f"stopped; the checkpoint of epoch {saved} is kept" in stdout, stdout[-3000:]
    assert not (out / ".lock").exists()


def test_each_rank_reads_a_disjoint_share_of_every_batch(
    demo_dataset_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows each rank's Trainer reads in an epoch: disjoint, together the train split.

    Each rank runs alone here in a one-member group (so its collectives return at once),
    told it is rank r of 2; a spy on the reader records the rows it asks for.
    """
    ds = load_dataset(demo_dataset_dir)
    model_config, names = build_model_config(ds, TINY)
    read: dict[int, list[int]] = {0: [], 1: []}
    real = FeatureFile.read
    tdist.init_process_group("gloo", store=tdist.HashStore(), rank=0, world_size=1)
    try:
        for rank in (0, 1):
            world = dist.World(rank=rank, size=2, local_rank=rank, local_size=2)
            setup = TrainerSetup(
                ds, tmp_path, _cfg(1), model_config, names, torch.device("cpu"), world=world
            )
            trainer = Trainer(setup)

            def spy(self: FeatureFile, rows: np.ndarray, rank: int = rank) -> torch.Tensor:
                read[rank].extend(int(r) for r in rows)
                return real(self, rows)

            monkeypatch.setattr(FeatureFile, "read", spy)
            assert trainer.train_epoch(1) is not None
            monkeypatch.setattr(FeatureFile, "read", real)
    finally:
        tdist.destroy_process_group()
    train_rows = ds.split_indices("train").tolist()
    assert set(read[0]).isdisjoint(read[1])
    assert sorted(read[0] + read[1]) == train_rows  # every clip once per epoch
    assert (len(read[0]), len(read[1])) == (12, 13)


def test_shards_split_evenly_and_cover_everything() -> None:
    for n in range(0, 40):
        for size in (1, 2, 3, 8):
            parts = [range(n)[dist.shard(n, r, size)] for r in range(size)]
            assert [i for p in parts for i in p] == list(range(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_bf16_needs_a_gpu_and_old_configs_load_as_fp32(demo_dataset_dir: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="precision='fp16'"):
        TrainConfig(precision="fp16")
    if not torch.cuda.is_available():
        cfg = TrainConfig(epochs=1, device="cpu", precision="bf16")
        with pytest.raises(ValueError, match="bf16 needs a CUDA GPU.*use --precision fp32"):
            train(demo_dataset_dir, tmp_path / "ck", train_config=cfg, model_overrides=TINY)
    old = {k: v for k, v in _cfg(1).to_dict().items() if k != "precision"}
    assert TrainConfig.from_dict(old).precision == "fp32"


def test_torchrun_environment_is_read() -> None:
    assert dist.from_env() == dist.World() or "WORLD_SIZE" in os.environ
    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        world = dist.from_env()
        assert (world.rank, world.size, world.local_rank, world.local_size) == (3, 4, 1, 2)
        assert world.active and not world.is_main
        mp.setenv("RANK", "4")
        with pytest.raises(ValueError, match="RANK=4 outside 0..3"):
            dist.from_env()
