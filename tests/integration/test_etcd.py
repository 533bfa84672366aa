"""etcd end to end on real containers (suites/etcd-ci.yaml, a few minutes): Debian's
etcd under kills and partitions is valid, its serializable reads are caught by
linearizability with the leader cut off, and --unsafe-no-fsync by the set checker
after every member's power is cut. The full etcd suite is suites/etcd.yaml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.matrix_run import run_suite

pytest.importorskip("docker")
pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_the_etcd_ci_matrix_passes_correct_etcd_and_catches_both_bug_modes(tmp_path):
    got = run_suite("etcd-ci.yaml", tmp_path)
    rows, report = got.rows, got.report
    assert got.returncode == 0, report + "\n" + got.stderr[-3000:]
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
