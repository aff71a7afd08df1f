"""The server's imports are set aside from the cycle collector (ui.long_lived), so
Streamlit's full collection after every run walks only what the runs made."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import gc, json
import ui.state  # what app.py imports before it freezes: torch and plotly come with it
before = len(gc.get_objects())
from ui.long_lived import freeze_imports, freeze_new_imports
frozen = freeze_imports()
again = freeze_new_imports()  # no module imported since: nothing more frozen
import xml.dom.minidom  # a module imported later (a page's first visit) is frozen after it
more = freeze_new_imports()
cycle = []
cycle.append(cycle)  # garbage made after the freeze is still collected
del cycle
print(json.dumps({"before": before, "frozen": frozen, "again": again, "more": more,
                  "tracked": len(gc.get_objects()), "collected": gc.collect(2)}))
"""


def test_imports_are_frozen_when_made_and_later_garbage_is_still_collected():
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["before"] > 100_000  # torch, plotly and streamlit: what a full collection walked
    assert got["frozen"] >= got["before"] and got["again"] == got["frozen"]
    assert got["more"] > got["frozen"]
    assert got["tracked"] < got["before"] // 20  # a collection now walks a few thousand
    assert got["collected"] >= 1  # the cycle made after the freeze
