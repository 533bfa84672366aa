"""The whole run is validated before it starts: every bad value and every schedule event
that could not be injected as written is one line and exit 3, and no cluster starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import squall.run.runner as runner_mod
from squall.cli import main

# Each was accepted once: a run started with it and did something else than asked.
BAD_TEST_VALUES = {
    "snapshot_every -1": {"snapshot_every": -1},
    "name escaping the store": {"name": "../../x"},
    "name hidden": {"name": ".x"},
    "concurrency as a duration": {"concurrency": "2m"},
    "nodes true": {"nodes": True},
    "nodes 10": {"nodes": 10},
    "time_limit NaN": {"time_limit": float("nan")},
    "time_limit inf": {"time_limit": float("inf")},
    "failover_bound 0": {"failover_bound": 0},
    "failover_bound negative": {"failover_bound": -1},
    "starvation_bound 0": {"starvation_bound": 0},
    "check_time_limit negative": {"check_time_limit": -1},
    "rate negative": {"rate": -5},
    "rate inf": {"rate": float("inf")},
    "nemesis_interval 0": {"nemesis_interval": 0, "nemesis": ["kill"]},
    "concurrency 0": {"concurrency": 0},
    "seed fraction": {"seed": 1.5},
    "seed negative": {"seed": -1},
    "bugs a mapping": {"bugs": [{"a": 1}]},
    "nemesis unknown": {"nemesis": ["bogus"]},
    "workload a list": {"workload": ["register"]},
    "system_options a list": {"system_options": [1]},
    "election_timeout_ms words": {"election_timeout_ms": ["a", "b"]},
    "heartbeat_ms true": {"heartbeat_ms": True},
    "store under a file": {"store": "/dev/null/x"},
    "faults asked, none drawn": {"nemesis": ["kill"], "time_limit": 5},
}

BAD_EVENTS = {
    "target bogus": {"at": "1s", "fault": "kill", "target": "bogus", "for": "1s"},
    "nodes unknown": {"at": "1s", "fault": "kill", "nodes": ["n9"], "for": "1s"},
    "nodes empty": {"at": "1s", "fault": "pause", "nodes": [], "for": "1s"},
    "grudge unknown": {"at": "1s", "fault": "partition", "grudge": "nonsense", "for": "1s"},
    "grudge naming a stranger": {
        "at": "1s",
        "fault": "partition",
        "grudge": {"n1": ["n9"]},
        "for": "1s",
    },
    "toxic unknown": {"at": "1s", "fault": "link", "toxic": "bogus", "for": "1s"},
    "toxic attribute negative": {
        "at": "1s",
        "fault": "link",
        "toxic": "latency",
        "attributes": {"latency": -1},
        "for": "1s",
    },
    "toxic stream sideways": {"at": "1s", "fault": "link", "stream": "sideways", "for": "1s"},
    "at past the time limit": {"at": "100s", "fault": "kill", "for": "1s"},
    "for zero": {"at": "1s", "fault": "kill", "for": "0s"},
    "at NaN": {"at": float("nan"), "fault": "kill", "for": "1s"},
    "fault unknown": {"at": "1s", "fault": "kil", "for": "1s"},
}


@pytest.fixture
def no_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("a cluster was started for a run that should have been refused")

    monkeypatch.setattr(runner_mod, "make_cluster", refuse)


def _refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert (code, len(err)) == (3, 1), err
    return err[0]


@pytest.mark.parametrize("values", BAD_TEST_VALUES.values(), ids=BAD_TEST_VALUES.keys())
def test_a_bad_test_value_is_refused_before_any_cluster_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_cluster: None, values: dict
) -> None:
    store = tmp_path / "store"
    test = {"backend": "local", "store": str(store), "time_limit": 10, **values}
    f = tmp_path / "test.yaml"
    f.write_text(yaml.safe_dump(test))
    _refused(["run", "-f", str(f)], capsys)
    assert not store.exists() or not any(store.iterdir()), "a run directory was made"


@pytest.mark.parametrize("event", BAD_EVENTS.values(), ids=BAD_EVENTS.keys())
def test_a_schedule_event_that_cannot_be_injected_is_refused_before_any_cluster_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_cluster: None, event: dict
) -> None:
    schedule = tmp_path / "faults.yaml"
    schedule.write_text(yaml.safe_dump({"events": [event]}))
    args = ["run", "--backend", "local", "--nodes", "3", "--time-limit", "10"]
    _refused([*args, "--store", str(tmp_path / "s"), "--nemesis", str(schedule)], capsys)


def test_a_schedule_file_with_no_events_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_cluster: None
) -> None:
    schedule = tmp_path / "faults.yaml"
    schedule.write_text("events: []\n")
    said = _refused(
        ["run", "--backend", "local", "--store", str(tmp_path), "--nemesis", str(schedule)],
        capsys,
    )
    assert "holds none" in said


def test_a_good_schedule_passes_validation(tmp_path: Path) -> None:
    from squall.run.config import Test
    from squall.run.runner import preflight

    schedule = tmp_path / "faults.yaml"
    events = [
        {"at": "1s", "fault": "kill", "target": "leader", "for": "1s"},
        {"at": "3s", "fault": "partition", "grudge": {"n1": ["n2"]}, "for": "1s"},
        {"at": "5s", "fault": "link", "toxic": "latency", "attributes": {"latency": 50}},
    ]
    schedule.write_text(yaml.safe_dump({"events": events}))
    test = Test(backend="local", nodes=3, time_limit=10, nemesis_file=str(schedule))
    preflight(test.resolved())
