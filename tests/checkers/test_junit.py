"""JUnit XML from a composed results dict."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from squall.report.junit import junit_xml, write_junit

RESULTS = {
    "valid": False,
    "stats": {"valid": True, "seconds": 0.01},
    "linear": {"valid": False, "why": "a read of 3 after a write of 4", "seconds": 1.5},
    "fidelity": {"valid": "unknown", "why": "no node digests were collected"},
}


def cases(xml: str) -> dict[str, ET.Element]:
    root = ET.fromstring(xml.split("?>", 1)[1])
    return {str(c.get("name")): c for c in root.iter("testcase")}


def test_one_testcase_per_checker_and_suite_counts() -> None:
    xml = junit_xml(RESULTS)
    assert set(cases(xml)) == {"stats", "linear", "fidelity"}
    suite = ET.fromstring(xml.split("?>", 1)[1]).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")


def test_false_is_a_failure_carrying_the_why() -> None:
    failure = cases(junit_xml(RESULTS))["linear"].find("failure")
    assert failure is not None and failure.get("message") == "a read of 3 after a write of 4"


def test_unknown_is_skipped_with_its_reason_and_true_passes() -> None:
    c = cases(junit_xml(RESULTS))
    skipped = c["fidelity"].find("skipped")
    assert skipped is not None and "no node digests" in (skipped.get("message") or "")
    assert c["stats"].find("failure") is None and c["stats"].find("skipped") is None


def test_write_junit_into_a_run_dir_writes_results_xml(tmp_path: Path) -> None:
    path = write_junit(RESULTS, tmp_path)
    assert path == tmp_path / "results.xml"
    assert 'name="linear"' in path.read_text()


def test_a_linearizability_result_without_why_gets_a_sentence_from_its_counterexample() -> None:
    from squall.checkers.linearizable import check
    from squall.history import Op, reindex
    from squall.report.junit import why_of

    h = reindex(
        [
            Op(0, "invoke", "write", ["k", 4], time=1),
            Op(0, "ok", "write", ["k", 4], time=2),
            Op(1, "invoke", "read", ["k", None], time=3),
            Op(1, "ok", "read", ["k", 3], time=4),
        ]
    )
    assert why_of(check("cas-register", h)) == (
        "linearizability failed on key k: read() -> 3 cannot follow write(4) -> ok "
        "(the register held 4)"
    )
