"""benchmarks/gpu_check.sh --dry-run: the GPU machine's check rehearsed on the CPU (gloo, two
processes, tiny settings) passes and prints every line of its report; without a GPU and
without --dry-run it says so and exits 2."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


@pytest.mark.slow
def test_dry_run_passes_and_prints_the_report() -> None:
    done = subprocess.run(
        [str(SCRIPT), "--dry-run"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    starts = ["gpu_check: dry run: CPU, gloo", "ddp: 2 processes (gloo)", "bf16 (dry: fp32",
              "reproduce: the chain", "synthesis: 1 s clip", "gpu_check: all ok"]  # fmt: skip
    assert [next((s for s in starts if line.startswith(s)), None) for line in lines] == starts
    assert all(line.endswith(": ok") for line in lines[1:-1])
    assert "tolerance 1e-05" in lines[1] and "band 5%" in lines[2]


@pytest.mark.slow
def test_without_a_gpu_it_says_so_and_exits_2() -> None:  # ENV hides any GPU
    done = subprocess.run([str(SCRIPT)], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert done.returncode == 2
    assert "no GPU visible" in done.stderr and "--dry-run" in done.stderr
