"""The codebase's own rules, checked like behaviour: the layering (import-linter's contracts in
pyproject.toml), each package's public face (its ``__all__``), no private name crossing a
module, few modules loose in ``vae/``, and a README layout that names every package once.

The public face is read from the sources (``ast``), not by importing them: the checks are
quick and see imports inside functions and under ``TYPE_CHECKING`` too.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("vae", "ui", "app_pages")
# Code that must use only a package's public names; tests/ may reach inside.
OUTSIDE_CODE = ("app.py", "vae", "ui", "app_pages", "scripts", "benchmarks")
MAX_TOP_MODULES = 8  # issue 25: at most 8 modules directly in vae/ besides __init__/__main__
MIN_PACKAGES = 5


def python_files(*roots: str) -> list[Path]:
    """Every Python file under ``roots`` (files or folders), relative to the repository root."""
    found: list[Path] = []
    for root in roots:
        path = ROOT / root
        if path.is_file():
            found.append(Path(root))
        elif path.is_dir():
            found += sorted(p.relative_to(ROOT) for p in path.rglob("*.py"))
    return [p for p in found if "node_modules" not in p.parts]


def module_name(path: Path) -> str:
    """``vae/audio/io.py`` -> ``vae.audio.io``; a package's ``__init__.py`` -> the package."""
    parts = list(path.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p) for p in python_files(*PROJECT)}


def packages() -> list[str]:
    """The sub-packages of ``vae``: ``audio``, ``cli``, ..."""
    return sorted(p.parent.name for p in (ROOT / "vae").glob("*/__init__.py"))


def public_names(package: str) -> list[str]:
    """A package's ``__all__``, read from its ``__init__.py`` without importing it."""
    tree = ast.parse((ROOT / "vae" / package / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return list(ast.literal_eval(node.value))
    return []


def absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The module a ``from ... import`` reads from, relative imports resolved."""
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(path: Path) -> list[tuple[int, str]]:
    """Each project import in ``path`` as (line, module imported): both
    ``from vae.audio import features`` and ``from vae.audio.features import stft_window`` import
    ``vae.audio.features``."""
    me, found = module_name(path), []
    tree = ast.parse((ROOT / path).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name in MODULES]
        elif isinstance(node, ast.ImportFrom):
            source = absolute(node, me, path.name == "__init__.py")
            if source.split(".")[0] not in PROJECT:
                continue
            for alias in node.names:
                full = f"{source}.{alias.name}"
                found.append((node.lineno, full if full in MODULES else source))
    return found


def dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of names and attributes, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None


# namedtuple's own API is spelt with one underscore so as not to clash with field names
NAMEDTUPLE_API = {"_asdict", "_field_defaults", "_fields", "_make", "_replace"}


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name not in NAMEDTUPLE_API


def private_crossings(path: Path) -> list[str]:
    """Private names (one leading underscore) that ``path`` takes from another module: imported
    (``from m import _x``) or reached through a name bound by a project import (``m._x``)."""
    tree = ast.parse((ROOT / path).read_text())
    bound: set[str] = set()  # local names that stand for a project module or one of its names
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PROJECT:
                    bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            source = absolute(node, module_name(path), path.name == "__init__.py")
            if source.split(".")[0] not in PROJECT:
                continue
            for alias in node.names:
                if is_private(alias.name):
                    found.append(f"{path}:{node.lineno}: from {source} import {alias.name}")
                bound.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            head = dotted(node.value)
            if head and head.split(".")[0] in bound:
                found.append(f"{path}:{node.lineno}: {head}.{node.attr}")
    return found


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    if not lint.exists():
        pytest.skip(f"{lint} missing: pip install -r requirements-dev.txt")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    kept = re.search(r"Contracts: (\d+) kept, (\d+) broken", done.stdout)
    assert kept and int(kept[1]) >= 5 and kept[2] == "0", done.stdout[-2000:]


def test_vae_is_packages_by_concern() -> None:
    loose = sorted(
        p.name for p in (ROOT / "vae").glob("*.py") if p.name not in ("__init__.py", "__main__.py")
    )
    assert len(loose) <= MAX_TOP_MODULES, f"too many modules directly in vae/: {loose}"
    assert len(packages()) >= MIN_PACKAGES, f"too few packages in vae/: {packages()}"


@pytest.mark.parametrize("package", packages())
def test_each_package_names_its_public_face(package: str) -> None:
    init = ROOT / "vae" / package / "__init__.py"
    tree = ast.parse(init.read_text())
    assert ast.get_docstring(tree), f"{init} says nothing of what the package holds"
    public = public_names(package)
    assert public, f"{init} has no __all__: list the modules code outside it may import"
    assert public == sorted(set(public)), f"{init}: keep __all__ sorted, each name once"
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    defined |= {
        t.id
        for n in tree.body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    unknown = [n for n in public if f"vae.{package}.{n}" not in MODULES and n not in defined]
    assert not unknown, f"{init}: __all__ names what does not exist: {unknown}"


def test_code_outside_a_package_uses_only_its_public_modules() -> None:
    public = {p: set(public_names(p)) for p in packages()}
    reached_in = []
    for path in python_files(*OUTSIDE_CODE):
        importer = module_name(path).split(".")
        for line, module in sorted(set(imports(path))):
            parts = module.split(".")
            if len(parts) < 3 or parts[0] != "vae" or parts[1] not in public:
                continue  # not a module inside a package of vae
            if importer[:2] == parts[:2]:
                continue  # the package's own modules may use each other
            if parts[2] not in public[parts[1]]:
                reached_in.append(f"{path}:{line}: {module} (not in vae.{parts[1]}.__all__)")
    assert not reached_in, "internal modules imported from outside their package:\n" + "\n".join(
        reached_in
    )


def test_no_private_name_crosses_a_module() -> None:
    crossings = [c for p in python_files(*OUTSIDE_CODE) for c in private_crossings(p)]
    assert not crossings, "private names used across modules (make them public):\n" + "\n".join(
        crossings
    )


def test_the_readme_layout_names_every_package_once() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Layout", 1)[1].split("\n## ", 1)[0]
    lines = re.findall(r"^- `([\w/.]+)`(.*)$", section, flags=re.MULTILINE)
    named = [entry for entry, _ in lines]
    # vae/'s packages are named as folders, its loose modules, ui's and the pages' one by one
    expected = {f"vae/{p}/" for p in packages()} | {
        str(p) for p in python_files("vae") if len(p.parts) == 2
    }
    expected |= {str(p) for p in python_files("app.py", "ui", "app_pages")}
    assert sorted(expected - set(named)) == [], "README's Layout lacks these"
    assert sorted(set(named) - expected) == [], "README's Layout names what is gone"
    assert len(named) == len(set(named)), "something is named twice in README's Layout"
    for entry, text in lines:
        if entry.startswith("vae/") and entry.endswith("/"):
            missing = [m for m in public_names(entry[4:-1]) if f"`{m}`" not in text]
            assert not missing, f"README's line for {entry} does not name {missing}"
