"""Run one of ``tests/js/*_node.js`` under node on a JSON job: the sound pad's and the
colour map's JavaScript, compared with the library by tests/unit/test_sound_pad*.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

NODE = shutil.which("node")
JS = Path(__file__).resolve().parent / "js"


def run_node(script: str, job: Any, tmp_path: Path, timeout: float = 120) -> Any:
    """``node tests/js/<script> job.json out.json`` in ``tmp_path``: what the script wrote."""
    assert NODE is not None, "no node here (apt-get install nodejs)"
    (tmp_path / "job.json").write_text(json.dumps(job))
    out = tmp_path / "out.json"
    subprocess.run([NODE, str(JS / script), str(tmp_path / "job.json"), str(out)], check=True,
                   timeout=timeout)  # fmt: skip
    return json.loads(out.read_text())
