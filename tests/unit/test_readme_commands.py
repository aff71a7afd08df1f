"""The README's commands work from a fresh clone anywhere (issue 24, finding 5): each
``python -m vae`` line parses with the real CLI, none reads a folder only the machines this
was built on have (``../shared``), and the FSDD walk-through starts by fetching the
recordings that its later commands read."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from vae.cli import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"


def _commands(text: str) -> list[list[str]]:
    """The arguments of every ``python -m vae`` line in the bash blocks of ``text``, with
    continuation lines joined and ``[optional]`` parts left out."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            if "python -m vae " not in line or line.lstrip().startswith("#"):
                continue
            line = re.sub(r"\[[^\]]*\]", "", line.split("python -m vae ", 1)[1])
            found.append(shlex.split(line.split(" > ", 1)[0]))
    return found


def _section(title: str) -> str:
    text = README.read_text()
    return text.split(f"\n## {title}", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("args", _commands(README.read_text()), ids=lambda a: " ".join(a)[:60])
def test_every_readme_command_parses_and_reads_no_machine_folder(args: list[str]) -> None:
    build_parser().parse_args(args)  # exits 2 naming the option on a renamed flag or command
    assert not [a for a in args if a.startswith("../shared")], "a clone elsewhere has no ../shared"


def test_the_fsdd_walk_through_fetches_the_recordings_it_reads() -> None:
    commands = _commands(_section("The CLI on the Free Spoken Digit Dataset"))
    first = build_parser().parse_args(commands[0])
    assert commands[0][0] == "fetch-fsdd", "the first command must get the recordings"
    fetched = Path(first.out)
    preprocess = next(build_parser().parse_args(c) for c in commands if c[0] == "preprocess")
    assert Path(preprocess.src) == fetched
    reconstruct = next(build_parser().parse_args(c) for c in commands if c[0] == "reconstruct")
    assert all(Path(a).parent == fetched for a in reconstruct.audio)
