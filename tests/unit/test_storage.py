"""vae.storage.files's readers of files we did not necessarily write (the atomic writers are covered
by tests/integration/test_crash_safety.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vae.storage.files import atomic_write_json, read_json, read_versioned_json


@pytest.mark.parametrize(
    ("text", "limit", "says"),
    [
        ("[" * 100_000 + "]" * 100_000, 1 << 20, "nested too deep to parse"),
        ("[" + "0," * 100 + "0]", 64, "203 bytes, more than the 64 such a file holds"),
        ("{x", 64, "Expecting property name"),
    ],
    ids=["deep", "big", "not-json"],
)
def test_hostile_json_is_refused_in_one_line_naming_the_file(
    tmp_path: Path, text: str, limit: int, says: str
) -> None:
    file = tmp_path / "config.json"
    file.write_text(text)
    with pytest.raises(ValueError) as err:
        read_json(file, max_bytes=limit)
    message = str(err.value)
    assert message.startswith(f"{file}: ") and says in message and "\n" not in message
    with pytest.raises(KeyError, match="config.json"):
        read_json(file, max_bytes=limit, error=KeyError)


def test_a_versioned_file_says_what_it_should_have_been_and_the_fix(tmp_path: Path) -> None:
    file = tmp_path / "config.json"
    file.write_text("[" * 100_000)
    with pytest.raises(ValueError, match=r"not a checkpoint config \(nested too deep.*; retrain"):
        read_versioned_json(file, 1, "checkpoint config", "retrain")
    file.write_text('{"format_version": 1, "a": [1, 2]}')
    assert read_versioned_json(file, 1, "checkpoint config", "retrain")["a"] == [1, 2]
    assert read_json(file) == {"format_version": 1, "a": [1, 2]}


def test_json_files_never_hold_nan(tmp_path) -> None:
    """Issue 23 finding 9: Python writes NaN and Infinity, which JSON readers refuse."""
    atomic_write_json(tmp_path / "ok.json", {"top_db": 80.0})
    for bad in (float("nan"), float("inf"), [1.0, -float("inf")]):
        with pytest.raises(ValueError, match=r"bad.json: a value is NaN or infinite"):
            atomic_write_json(tmp_path / "bad.json", {"trim_db": bad})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.json"]  # no file, no temp file
