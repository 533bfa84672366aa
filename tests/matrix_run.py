"""Runs a suite file with ``squall matrix`` in a child process, as CI does, for the matrix tests."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, kw_only=True)
class SuiteRun:
    returncode: int
    rows: dict[str, dict[str, Any]]  # case -> its summary row
    report: str  # one line per case, for assertion messages
    stderr: str


def run_suite(suite: str, store: Path, seed: int = 7, timeout: float = 900) -> SuiteRun:
    """``squall matrix suites/<suite> --store <store> --seed <seed>`` and its summary."""
    proc = subprocess.run(
        [sys.executable, "-m", "squall.cli", "matrix", str(ROOT / "suites" / suite)]
        + ["--store", str(store), "--seed", str(seed)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = {r["case"]: r for r in summary["rows"]}
    report = "\n".join(
        f"{c}: expected {r['expected']} got {r['got']} caught by {r['caught_by']} ({r['run_dir']})"
        for c, r in rows.items()
    )
    return SuiteRun(returncode=proc.returncode, rows=rows, report=report, stderr=proc.stderr)
