"""The rule for a dataset or checkpoint folder's name, the same for the app and the CLI.

Here, below everything, so that ``python -m vae preprocess`` checks its ``--out`` without
importing :mod:`vae.workspace` (which loads checkpoints and judges, and so torch)."""

from __future__ import annotations

import re

# One path component that every file system, shell and URL takes as it is.
FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")


def folder_name(text: str) -> str:
    """A user-typed dataset or checkpoint folder name, checked (surrounding spaces dropped).

    Raises:
        ValueError: empty, too long, or holding anything but letters, digits, ``_ - .``.
    """
    name = text.strip()
    if not FOLDER_NAME.fullmatch(name):
        raise ValueError(
            f"{text!r} is not a usable folder name; use letters, digits, '-', '_' or '.', "
            "up to 80 characters, starting with a letter or digit (e.g. my-clips)"
        )
    return name
