"""Helpers shared by the torchrun tests (tests/integration/test_distributed.py on one machine,
test_two_nodes.py across two network namespaces): the tiny model's arguments, the one-process
config they train, and how two checkpoints' weights are compared."""

from __future__ import annotations

import os
from pathlib import Path

from vae.model import checkpoints as ck
from vae.model.conv_vae import inert_parameters
from vae.training.train_config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = {"channels": (8, 16), "latent_dim": 4}
ARGS = "--batch-size 8 --channels 8,16 --latent-dim 4 --beta-warmup-epochs 1 --threads 1".split()
# 2 ranks vs 1 differ only in summation order (each rank's batch mean, DDP's gradient
# average): after 2-3 AdamW epochs the largest weight difference measured was 1.7e-7.
ATOL = 1e-5
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def one_process_config(epochs: int) -> TrainConfig:
    """What ARGS trains, for in-process one-rank runs."""
    return TrainConfig(epochs=epochs, batch_size=8, beta_warmup_epochs=1, threads=1)


def epoch_records(out: Path) -> list[dict]:
    """The epoch lines of ``out``'s metrics.jsonl."""
    return [r for r in ck.read_metrics(out) if r["event"] == "epoch"]


def max_diff(a: Path, b: Path) -> float:
    """Largest difference between the weights of two checkpoints that shape their output."""
    ma, mb = ck.load_checkpoint(a).model, ck.load_checkpoint(b).model
    wa, wb = ma.state_dict(), mb.state_dict()
    assert wa.keys() == wb.keys()
    inert = inert_parameters(ma)
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa if k not in inert)
