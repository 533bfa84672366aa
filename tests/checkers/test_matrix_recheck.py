"""`squall matrix --recheck`: a stored matrix's runs judged again by today's
checkers, without running the store."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console
from synth_run import synthetic_run_dir

from squall.run.matrix import recheck


def _summary(store: Path, rows: list[dict]) -> Path:
    path = store / "matrix" / "20261130T000000Z.json"
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps(
            {
                "suite": None,
                "seed": 7,
                "cases": len(rows),
                "of": len(rows),
                "passed": len(rows),
                "rows": rows,
            }
        )
    )
    return path


def test_a_recheck_judges_each_stored_run_again_and_keeps_a_new_summary(tmp_path: Path) -> None:
    run = synthetic_run_dir(tmp_path / "matrix-reg" / "20261130T000001")
    (run / "results.json").write_text(json.dumps({"valid": True}))  # what an older checker said
    gone = tmp_path / "matrix-gone" / "x"
    rows = [
        {
            "case": "reg",
            "expected": True,
            "got": True,
            "caught_by": [],
            "must_catch": [],
            "seconds": 40.0,
            "seed": 7,
            "run_dir": str(run),
        },
        {
            "case": "gone",
            "expected": True,
            "got": True,
            "caught_by": [],
            "must_catch": [],
            "seconds": 40.0,
            "seed": 7,
            "run_dir": str(gone),
        },
    ]
    path = _summary(tmp_path, rows)
    code = recheck(path, Console(file=io.StringIO()))
    fresh = json.loads((run / "results.json").read_text())
    assert "linearizable" in fresh, "the run was not checked again"
    kept = sorted((tmp_path / "matrix").glob("*.json"))
    assert len(kept) == 2
    new = json.loads(kept[-1].read_text())
    assert new["rechecked_from"] == str(path)
    got = {r["case"]: r for r in new["rows"]}
    assert got["reg"]["got"] == fresh["valid"]
    assert got["gone"]["got"] == "run failed" and "is gone" in got["gone"]["evidence"]
    assert code == 1
