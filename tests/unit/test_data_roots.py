"""vae.storage.data_roots: which folders a visitor may read clips from (issue 23, finding 4)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vae.storage.data_roots import ROOTS_ENV, check_source_folder, data_roots, is_private


def test_the_default_roots_are_data_and_the_datasets_beside_the_project(tmp_path: Path) -> None:
    work = tmp_path / "main"
    work.mkdir()
    assert data_roots({}, work) == [(work / "data").resolve()]
    (tmp_path / "shared" / "datasets").mkdir(parents=True)
    assert data_roots({}, work) == [work / "data", tmp_path / "shared" / "datasets"]


def test_the_environment_names_the_roots_relative_to_the_working_folder(tmp_path: Path) -> None:
    env = {ROOTS_ENV: f"clips{os.pathsep} {tmp_path / 'abs'} {os.pathsep}"}
    assert data_roots(env, tmp_path) == [tmp_path / "clips", tmp_path / "abs"]
    assert data_roots({ROOTS_ENV: "  "}, tmp_path) == [tmp_path / "data"]  # blank: defaults


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """data/{clips, sources/{fsdd, upload-mine, upload-theirs, demo-theirs}}, and a folder
    outside with a link to it from data/."""
    for sub in ("clips", "sources/fsdd", "sources/upload-mine", "sources/upload-theirs/a",
                "sources/demo-theirs"):  # fmt: skip
        (tmp_path / "data" / sub).mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "data" / "link").symlink_to(tmp_path / "outside")
    return tmp_path


def _check(tree: Path, path: str) -> Path:
    data = tree / "data"
    return check_source_folder(
        tree / path, [data], data / "sources", [data / "sources/upload-mine"]
    )


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("outside", "outside the folders the app may read"),
        ("data/clips/../../outside", "outside the folders the app may read"),
        ("data/link", "outside the folders the app may read"),
        ("data/sources/upload-theirs", "another session's upload folder"),
        ("data/sources/upload-theirs/a", "another session's upload folder"),
        ("data/sources/demo-theirs", "another session's upload folder"),
        ("data/sources/fsdd/../upload-theirs", "another session's upload folder"),
        ("data/sources", "holds the sessions' own upload folders"),
        ("data", "holds the sessions' own upload folders"),
    ],
)
def test_refused_in_one_line_naming_the_path_and_the_fix(tree: Path, path: str, why: str) -> None:
    with pytest.raises(ValueError) as err:
        _check(tree, path)
    message = str(err.value)
    assert message.startswith(f"{tree / path}: {why}") and "\n" not in message
    if "outside" in why:
        assert f"set {ROOTS_ENV}" in message


@pytest.mark.parametrize("path", ["data/clips", "data/sources/fsdd", "data/sources/upload-mine"])
def test_inside_the_roots_and_not_another_sessions_is_read(tree: Path, path: str) -> None:
    assert _check(tree, path) == (tree / path).resolve()


def test_private_names() -> None:
    assert is_private("upload-1234abcd") and is_private("demo-1234abcd")
    assert not is_private("fsdd") and not is_private("demo")
