"""The proof matrix's table: when a case goes red, the row says why (the
checker's reason and the fault acting on the store then), not only that."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from squall.history import NEMESIS, Op, write_history
from squall.report.evidence import detection_seconds, evidence
from squall.run import config as cfgmod
from squall.run.matrix import load_suite

S = 1_000_000_000


def _history(path: Path) -> Path:
    ops = [
        Op(process=NEMESIS, type="invoke", f="start-partition", value={}, time=3 * S, index=0),
        Op(
            process=NEMESIS,
            type="ok",
            f="start-partition",
            time=3 * S + 1,
            index=1,
            value={
                "targets": ["n1", "n2", "n3"],
                "leader": "n2",
                "grudge": {"n1": ["n2"], "n2": ["n1", "n3"], "n3": ["n2"]},
            },
        ),
        Op(process=0, type="invoke", f="read", value=["k1", None], time=5 * S, index=2, node="n2"),
        Op(process=0, type="ok", f="read", value=["k1", 0], time=5 * S + 10, index=3, node="n2"),
        Op(process=NEMESIS, type="ok", f="stop-partition", value={}, time=11 * S, index=4),
        Op(
            process=NEMESIS,
            type="ok",
            f="start-kill",
            value={"targets": ["n4"]},
            time=14 * S,
            index=5,
        ),
        Op(process=NEMESIS, type="ok", f="stop-kill", value={}, time=17 * S, index=6),
    ]
    write_history(path / "history.jsonl", ops)
    return path / "history.jsonl"


def test_a_linearizability_failure_names_its_op_and_the_fault_then_active(tmp_path: Path) -> None:
    why = "linearizability failed on key k1: read k1 -> 0 cannot follow write k1 <- 3"
    results = {
        "valid": False,
        "linearizable": {
            "valid": False,
            "why": why,
            "counterexample": {"blocking": {"time": 5 * S}},
        },
    }
    history = _history(tmp_path)
    at = detection_seconds(results, history)
    assert at == pytest.approx(5.0)
    line = evidence(results, ["linearizable"], at, history)
    assert line.startswith(why)
    assert "during partition of n1,n3 | n2, leader n2 from 3.0s" in line


def test_evidence_after_the_faults_healed_names_the_last_one(tmp_path: Path) -> None:
    results = {"set": {"valid": False, "why": "3 acknowledged adds lost (e.g. 1, 2, 3)"}}
    line = evidence(results, ["set"], 20.0, _history(tmp_path))
    assert "after kill of n4 from 14.0s" in line


def test_evidence_before_the_first_fault_names_the_fault_that_followed(tmp_path: Path) -> None:
    # early-ack: the lost add was acknowledged before the kill that lost it
    results = {"set": {"valid": False, "why": "1 acknowledged adds lost (e.g. 7)"}}
    line = evidence(results, ["set"], 1.0, _history(tmp_path))
    assert line.endswith("at 1.0s, before partition of n1,n3 | n2, leader n2 from 3.0s")


def test_a_fidelity_mismatch_names_the_faults_that_hit_its_nodes(tmp_path: Path) -> None:
    results = {
        "fidelity": {
            "valid": False,
            "why": "digests differ at index 640",
            "mismatches": [{"index": 640, "a": {"node": "n1"}, "b": {"node": "n4"}}],
        }
    }
    line = evidence(results, ["fidelity"], None, _history(tmp_path))
    assert line == "digests differ at index 640 — kill of n4 from 14.0s"


def test_a_valid_case_has_no_evidence(tmp_path: Path) -> None:
    assert evidence({"valid": True}, [], None, _history(tmp_path)) == ""


@pytest.mark.parametrize(
    ("cases", "said"),
    [
        ("  - {name: a, expect: valid}\n  - {name: b}\n", "case #2 needs a name and an expect"),
        # checked before any case runs: a moved schedule once ended a matrix at case 20
        (
            "  - {name: a, run: {nemesis_file: schedules/gone.yaml}, expect: valid}\n",
            "gone.yaml does not exist",
        ),
    ],
)
def test_a_bad_suite_is_refused_whole_saying_what_is_wrong(
    tmp_path: Path, cases: str, said: str
) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("cases:\n" + cases)
    with pytest.raises(cfgmod.ConfigError, match=said):
        load_suite(suite)


def test_the_matrix_page_links_each_case_to_its_report_and_says_why(tmp_path: Path) -> None:
    from squall.report.matrix_page import write_matrix_html

    run = tmp_path / "matrix-stale-read" / "20261130T000000"
    rows = [
        {
            "case": "register-kill",
            "passed": True,
            "expected": True,
            "got": True,
            "caught_by": [],
            "detection_s": None,
            "seconds": 47.2,
            "figures": {},
            "evidence": "",
            "seed": 5,
            "run_dir": str(tmp_path / "matrix-register-kill" / "x"),
        },
        {
            "case": "stale-read",
            "passed": False,
            "expected": False,
            "got": True,
            "caught_by": [],
            "detection_s": None,
            "seconds": 45.0,
            "figures": {},
            "evidence": "read k1 <stale>",
            "seed": 5,
            "run_dir": str(run),
        },
    ]
    summary = {"suite": "suites/m.yaml", "seed": 5, "cases": 2, "passed": 1, "rows": rows}
    page = write_matrix_html(summary, tmp_path / "matrix" / "t.html").read_text()
    assert "1 of 2 cases as expected: the matrix failed" in page
    assert "href='../matrix-stale-read/20261130T000000/report.html'" in page
    assert "read k1 &lt;stale&gt;" in page


def test_ctrl_c_in_a_case_stops_the_matrix_and_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import squall.run.matrix as matrix

    suite = tmp_path / "s.yaml"
    suite.write_text("cases:\n  - {name: a, expect: valid}\n  - {name: b, expect: valid}\n")
    ran: list[str] = []

    def interrupted_case(case: matrix.Case, *_: object) -> matrix.Outcome:
        ran.append(case.name)
        return matrix.Outcome(case, True, [], None, 1.0, "-", {}, interrupted=True)

    monkeypatch.setattr(matrix, "run_case", interrupted_case)
    code = matrix.run_matrix(suite, store=str(tmp_path / "store"))
    assert ran == ["a"], "the matrix went on after Ctrl-C"
    assert code == 3
    page = next((tmp_path / "store" / "matrix").glob("*.html")).read_text()
    assert "interrupted: 1 of 2 cases run" in page


def test_a_case_that_can_no_longer_run_is_a_row_not_the_end_of_the_matrix(tmp_path: Path) -> None:
    import squall.run.matrix as matrix

    case = matrix.Case("moved", {"nemesis_file": str(tmp_path / "moved.yaml")}, True)
    out = matrix.run_case(case, 1, str(tmp_path), __import__("rich.console").console.Console())
    assert out.got == "run failed" and not out.passed
    assert "moved.yaml does not exist" in out.evidence


def test_a_red_case_prints_the_one_command_that_replays_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from rich.console import Console

    import squall.run.matrix as matrix

    suite = tmp_path / "s.yaml"
    suite.write_text("cases:\n  - {name: green, expect: valid}\n  - {name: red, expect: valid}\n")

    def case_result(case: matrix.Case, *_: object) -> matrix.Outcome:
        got = case.name == "green"
        return matrix.Outcome(case, got, [], None, 1.0, f"/runs/{case.name}", {}, seed=42)

    monkeypatch.setattr(matrix, "run_case", case_result)
    out = io.StringIO()
    code = matrix.run_matrix(suite, store=str(tmp_path / "store"), console=Console(file=out))
    assert code == 1
    printed = out.getvalue()
    assert "replay it: squall run --replay /runs/red" in printed
    assert "--replay /runs/green" not in printed, "a green case needs no replay line"
    summary = json.loads(next((tmp_path / "store" / "matrix").glob("*.json")).read_text())
    assert summary["rows"][1]["replay"] == "squall run --replay /runs/red"
