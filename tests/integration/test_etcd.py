"""etcd end to end on real containers (suites/etcd-ci.yaml, a few minutes): Debian's
etcd under kills and partitions is valid, its serializable reads are caught by
linearizability with the leader cut off, and --unsafe-no-fsync by the set checker
after every member's power is cut. The full etcd suite is suites/etcd.yaml."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("docker")
pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_the_etcd_ci_matrix_passes_correct_etcd_and_catches_both_bug_modes(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "squall.cli",
            "matrix",
            str(ROOT / "suites" / "etcd-ci.yaml"),
            "--store",
            str(tmp_path),
            "--seed",
            "7",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = {r["case"]: r for r in summary["rows"]}
    report = "\n".join(
        f"{c}: expected {r['expected']} got {r['got']} caught by {r['caught_by']} ({r['run_dir']})"
        for c, r in rows.items()
    )
    assert proc.returncode == 0, report + "\n" + proc.stderr[-3000:]
    assert rows["correct-register-kill-partition"]["got"] is True, report
    assert "linearizable" in rows["stale-read"]["caught_by"], report
    assert "set" in rows["no-fsync"]["caught_by"], report


def test_faults_etcd_cannot_take_are_refused_before_anything_starts():
    proc = subprocess.run(
        [sys.executable, "-m", "squall.cli", "run", "--system", "etcd", "--nemesis", "clock"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert "cannot take nemesis clock: etcd is a Go binary" in proc.stdout + proc.stderr
