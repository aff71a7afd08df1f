"""The codebase's own rules, checked like behaviour: the layering (import-linter's contracts in
pyproject.toml), the size of a module, and a README layout that names every module."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 450  # STYLE.md: one job per module, split before 500


def project_modules() -> list[Path]:
    """Every Python module of the app and the library, relative to the repository root."""
    found = [Path("app.py")]
    for folder in ("vae", "ui", "app_pages"):
        found += sorted(p.relative_to(ROOT) for p in (ROOT / folder).rglob("*.py"))
    return [p for p in found if "node_modules" not in p.parts]


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    if not lint.exists():
        pytest.skip(f"{lint} missing: pip install -r requirements-dev.txt")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    kept = re.search(r"Contracts: (\d+) kept, (\d+) broken", done.stdout)
    assert kept and int(kept[1]) >= 4 and kept[2] == "0", done.stdout[-2000:]


def test_no_module_is_longer_than_the_style_allows() -> None:
    lengths = {str(p): len((ROOT / p).read_text().splitlines()) for p in project_modules()}
    too_long = {p: n for p, n in lengths.items() if n > MAX_LINES}
    assert not too_long, f"split these modules (at most {MAX_LINES} lines): {too_long}"


def test_the_readme_layout_names_every_module_once() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Layout", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"^- `([\w/.]+\.py)`", section, flags=re.MULTILINE)
    modules = {str(p) for p in project_modules()}
    assert sorted(set(modules) - set(named)) == [], "README's Layout lacks these modules"
    assert sorted(set(named) - set(modules)) == [], "README's Layout names modules that are gone"
    assert len(named) == len(set(named)), "a module is named twice in README's Layout"
