"""suites/failpoints.yaml keeps its promise: a case per failpoint of the store, and every
durability bug mode caught by a case that has a control on the correct store."""

from __future__ import annotations

from pathlib import Path

import yaml

from squall.systems.aurora.store import bugs, failpoints

SUITE = Path(__file__).parents[1] / "suites" / "failpoints.yaml"
DURABILITY = (bugs.LOSSY_SNAPSHOT, bugs.NO_FSYNC, bugs.FORGIVE_FSYNC, bugs.RENAME_BEFORE_FSYNC)


def cases() -> list[dict]:  # type: ignore[type-arg]
    return list(yaml.safe_load(SUITE.read_text())["cases"])


def test_every_failpoint_has_a_crash_case_expected_valid() -> None:
    crashed = set()
    for case in cases():
        schedule = yaml.safe_load((SUITE.parent / case["run"]["nemesis_file"]).read_text())
        points = {e.get("point") for e in schedule["events"] if e["fault"] == "failpoint"}
        if case["expect"] == "valid" and not case["run"].get("bugs"):
            crashed |= {
                p for p in points if all(e.get("action") == "crash" for e in schedule["events"])
            }
    assert crashed == set(failpoints.POINTS)


def test_every_durability_bug_is_expected_caught_with_a_control_of_the_same_schedule() -> None:
    by_name = {c["name"]: c for c in cases()}
    for bug in DURABILITY:
        caught = [c for c in cases() if bug in c["run"].get("bugs", [])]
        assert caught and all(c["expect"] == "invalid" and c["caught_by"] for c in caught), bug
        for c in caught:
            control = by_name[c["name"] + "-control"]
            assert control["run"]["nemesis_file"] == c["run"]["nemesis_file"]
            assert control["expect"] == "valid"
