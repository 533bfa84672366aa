"""Lint and types run with the tests, so CI holds the code to the house style."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["squall"]


def _tool(name: str) -> list[str]:
    exe = Path(sys.executable).parent / name
    if exe.exists():
        return [str(exe)]
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; run ./scripts/setup (it installs the dev extras)")
    return [found]


def test_ruff_finds_nothing():
    proc = subprocess.run(
        [*_tool("ruff"), "check", *PACKAGES, "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_ruff_format_would_change_nothing():
    proc = subprocess.run(
        [*_tool("ruff"), "format", "--check", *PACKAGES, "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, "run `ruff format squall tests bench`:\n" + proc.stdout[-4000:]


def test_mypy_finds_nothing():
    proc = subprocess.run(
        [*_tool("mypy"), "--no-error-summary"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_every_file_the_readme_names_exists():
    # A user copies these commands first: a suite or script that moved makes
    # the README lie (it once named a suites/nightly.yaml that never existed).
    import re

    text = (ROOT / "README.md").read_text()
    named = set(re.findall(r"\b((?:suites|scripts|bench|docs|tests)/[\w./-]+\w)", text))
    assert named, "the README names no files: has the pattern gone stale?"
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"README names files that do not exist: {missing}"
