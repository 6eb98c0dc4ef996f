"""The habits CI holds: ruff (lint and format) over the whole checkout, mypy over the pure modules."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The pure modules: no I/O and no framework, so their types say everything about them.
TYPED_MODULES = (
    "topics",
    "connectors/pagination.py",
    "streams/reducers.py",
    "streams/aggregates.py",
    "streams/query.py",
)


def run(*cmd: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *cmd], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_ruff_finds_no_lint_error():
    result = run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, f"ruff check (fix with `ruff check --fix .`):\n{result.stdout}{result.stderr}"


def test_code_is_ruff_formatted():
    result = run("ruff", "format", "--no-cache", "--check", ".")
    assert result.returncode == 0, f"ruff format --check (fix with `ruff format .`):\n{result.stdout}{result.stderr}"


def import_tree(tmp: Path) -> Path:
    """A mailpulse/ package of symlinks laid out as it installs (topics/ -> mailpulse/topics, ...).

    setuptools' package-dir mapping is invisible to mypy, which derives module names from
    folders; without this tree ``from mailpulse.streams...`` between the checked modules
    would not resolve and their types would not be checked against each other.
    """
    package = tmp / "mailpulse"
    package.mkdir()
    for entry in (ROOT / "mailpulse").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for folder in ("topics", "connectors", "streams"):
        (package / folder).symlink_to(ROOT / folder)
    return tmp


def test_pure_modules_type_check(tmp_path):
    tree = import_tree(tmp_path)
    targets = [f"mailpulse/{module}" for module in TYPED_MODULES]
    for target in targets:
        assert (tree / target).exists(), f"{target} is named in TYPED_MODULES but does not exist"
    result = run(
        "mypy",
        "--config-file",
        str(ROOT / "pyproject.toml"),
        "--cache-dir",
        str(tmp_path / ".mypy_cache"),
        *targets,
        cwd=tree,
    )
    assert result.returncode == 0, (
        f"mypy (paths under mailpulse/ are the repository's folders):\n{result.stdout}{result.stderr}"
    )
    assert re.search(r"no issues found in [1-9]\d* source files", result.stdout), result.stdout
