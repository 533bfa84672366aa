"""Every history of Porcupine's test data gets the verdict its expected.json gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from squall.checkers.importers import load
from squall.checkers.linearizable import check

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "porcupine"
EXPECTED = DATA / "expected.json"


def _cases(section: str) -> list[tuple[str, bool]]:
    if not EXPECTED.exists():
        return []
    return sorted(json.loads(EXPECTED.read_text())[section].items())


needs_data = pytest.mark.skipif(
    not EXPECTED.exists(),
    reason=f"Porcupine test data not found at {DATA} (../shared/data/porcupine from the repo root)",
)


@needs_data
@pytest.mark.parametrize(("name", "expected"), _cases("etcd_linearizable") or [("none", True)])
def test_etcd_log_gets_expected_verdict(name: str, expected: bool) -> None:
    result = check("cas-register", load(DATA / "etcd" / name))
    assert result["valid"] is expected, result


@needs_data
@pytest.mark.parametrize(("name", "expected"), _cases("kv_linearizable") or [("none", True)])
def test_kv_log_gets_expected_verdict(name: str, expected: bool) -> None:
    result = check("kv", load(DATA / "kv" / name))
    assert result["valid"] is expected, result


@needs_data
def test_etcd_data_has_fifty_logs_with_verdicts() -> None:
    cases = _cases("etcd_linearizable")
    assert len(cases) == 50
    assert all((DATA / "etcd" / name).exists() for name, _ in cases)


@needs_data
def test_invalid_kv_log_names_the_failing_key() -> None:
    result = check("kv", load(DATA / "kv" / "c01-bad.txt"))
    ce = result["counterexample"]
    assert result["failed_key"] == ce["key"]
    assert ce["unlinearizable"], "an invalid history must show what could not be linearized"
    keys = {o.value[0] for o in load(DATA / "kv" / "c01-bad.txt")}
    assert ce["key"] in keys
