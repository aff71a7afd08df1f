"""A pickled object that proves code ran: unpickling it touches a file.

The hostile-file tests (tests/unit/test_checkpoints.py, test_safe_load.py and
tests/integration/test_untrusted_checkpoints.py) save it into a weights file, then check
that loading refused the file and that the marker never appeared.
"""

from __future__ import annotations

from pathlib import Path


class Trap:
    """Unpickling this touches ``marker``: proof that a pickle ran code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))
