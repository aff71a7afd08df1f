"""``python -m vae preprocess`` runs without torch: importing it costs a second of start-up
and a gigabyte of memory in every run, and preprocessing many clips uses none of it (a small
set, analysed in threads, still resamples through torchaudio)."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from tests.clirun import ROOT
from vae.data import parallel

# ``python -m vae ARGS`` as runpy runs it, then whether torch was ever imported.
WRAPPER = """
import runpy, sys
sys.argv = ["vae", *sys.argv[1:]]
try:
    runpy.run_module("vae", run_name="__main__", alter_sys=True)
except SystemExit as exit:
    code = exit.code
else:
    code = 0
print("exit", code, "torch", "torch" in sys.modules, "torchaudio" in sys.modules)
"""


def run_vae(*args: object) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(parallel.workers() < 2, reason="the process path needs two cores")
def test_preprocess_never_imports_torch(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    rng = np.random.default_rng(0)
    for i in range(parallel.MIN_FILES):  # enough files for worker processes
        wave = 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * np.arange(4000) / 8000)
        sf.write(clips / f"{i % 3}_x_{i}.wav", wave + 0.01 * rng.standard_normal(4000), 8000)
    out = tmp_path / "data"
    args = ["--sample-rate", "8000", "--clip-seconds", "0.504", "--n-fft", "128", "--hop", "64"]
    assert run_vae("preprocess", clips, "--out", out, *args) == "exit 0 torch False False"
    assert (out / "features.npy").is_file()
    assert run_vae("preprocess", "--help") == "exit 0 torch False False"


def test_the_check_sees_torch_where_a_command_needs_it():
    # The same wrapper on train's help does import torch: the check above can fail.
    assert run_vae("train", "--help") == "exit 0 torch True False"
