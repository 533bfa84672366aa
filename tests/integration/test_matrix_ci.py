"""The short proof matrix, end to end on real containers: the correct store
under kills and partitions is valid, and two seeded bugs are caught by the
checker that should catch them (suites/ci.yaml). The nightly suite is
suites/matrix.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.matrix_run import run_suite

pytest.importorskip("docker")
pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_the_ci_matrix_passes_the_correct_store_and_catches_both_bugs(tmp_path):
    got = run_suite("ci.yaml", tmp_path)
    rows, report = got.rows, got.report
    assert got.returncode == 0, report + "\n" + got.stderr[-3000:]
    assert rows["correct-register-kill-partition"]["got"] is True, report
    assert "linearizable" in rows["stale-read"]["caught_by"], report
    assert "fidelity" in rows["lossy-snapshot"]["caught_by"], report
    # Every detection is explained: the failing checker says which op / index.
    for case in ("stale-read", "lossy-snapshot"):
        results = json.loads((Path(rows[case]["run_dir"]) / "results.json").read_text())
        why = results[rows[case]["caught_by"][0]].get("why", "")
        assert why, f"{case}: the checker that caught it gave no reason"
