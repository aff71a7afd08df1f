"""Run the real CLI, ``python -m vae ...``, from the project root, as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def vae(*args: object, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """The finished command (stdout and stderr as text); with ``check``, a non-zero exit
    fails the test with the end of its stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "vae", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"vae {args} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return proc
