"""Shrinking a failing schedule, with replays stood in for (the real ones run in the matrix):
what is kept, what is dropped, what is written down."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import squall.run.shrink as shrink


def stale_read_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "test.yaml").write_text(
        yaml.safe_dump(
            {
                "workload": "register",
                "nodes": 5,
                "time_limit": 40,
                "seed": 9,
                "backend": "local",
                "bugs": ["stale-read"],
                "name": "x",
            }
        )
    )
    (run / "results.json").write_text(
        json.dumps(
            {
                "valid": False,
                "linearizable": {
                    "valid": False,
                    "counterexample": {"unlinearizable": [{"f": "read"}]},
                },
            }
        )
    )
    events = [
        {"at": "2s", "fault": "kill", "for": "4s", "nodes": ["n2"]},
        {"at": "10s", "fault": "partition", "for": "8s", "grudge": {"n1": ["n2"]}},
        {"at": "20s", "fault": "pause", "for": "4s", "nodes": ["n3"]},
        {"at": "28s", "fault": "kill", "for": "4s", "nodes": ["n4"]},
    ]
    (run / "nemesis-timeline.yaml").write_text(yaml.safe_dump({"seed": 9, "events": events}))
    return run


def replay_result(bad: bool) -> dict[str, Any]:
    """What replay_once returns for a replay that did (bad) or did not show a stale read."""
    lin: dict[str, Any] = {"valid": not bad}
    if bad:
        lin["counterexample"] = {"unlinearizable": [{"f": "read"}]}
    return {
        "run_dir": "x",
        "exit": 1 if bad else 0,
        "valid": not bad,
        "deciders": ["linearizable"] if bad else [],
        "results": {"linearizable": lin},
    }


def replays_that_fail_only_with_the_partition(calls: list[Any]) -> Any:
    def fake(
        base: Any,
        events: list[dict[str, Any]],
        time_limit: float,
        seed: int,
        where: Path,
        console: Any,
    ) -> dict[str, Any]:
        calls.append((len(events), time_limit, seed))
        bad = any(e["fault"] == "partition" for e in events) and time_limit >= 8
        return replay_result(bad)

    return fake


def test_shrinking_keeps_only_the_fault_that_matters_and_cuts_the_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(shrink, "replay_once", replays_that_fail_only_with_the_partition(calls))
    run = stale_read_run(tmp_path)
    assert shrink.Shrinker(run, tries=2, budget_s=60).run() == 0
    shrunk = yaml.safe_load((run / "shrink" / "shrunk.yaml").read_text())
    assert [e["fault"] for e in shrunk["events"]] == ["partition"]
    assert shrunk["events"][0]["for"] == "1s", "the partition is halved while it still reproduces"
    assert shrunk["events"][0]["at"] == "3s", "the timeline moves earlier while it reproduces"
    assert "--time-limit 9" in (run / "shrink" / "shrunk.yaml").read_text().splitlines()[0]
    assert all(seed == 9 for *_, seed in calls), "every replay uses the run's own seed"
    log = json.loads((run / "shrink" / "shrink.json").read_text())
    assert log["before"] == {"events": 4, "time_limit": 40.0}
    assert log["after"] == {"events": 1, "time_limit": 9.0}
    assert len(log["tries"]) == len({id(t) for t in log["tries"]}) > 0
    assert any(not t["reproduced"] for t in log["tries"]), "failed candidates are kept in the log"


def test_a_candidate_is_replayed_until_it_reproduces_and_no_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(shrink, "replay_once", replays_that_fail_only_with_the_partition(calls))
    s = shrink.Shrinker(stale_read_run(tmp_path), tries=3, budget_s=60)
    assert s.attempt([{"at": "1s", "fault": "partition", "for": "3s"}], 20) is True
    assert len(calls) == 1
    assert s.attempt([{"at": "1s", "fault": "kill", "for": "3s"}], 20) is False
    assert len(calls) == 4, "a candidate that never reproduces gets all its replays"


def test_the_same_checker_failing_on_another_kind_of_op_is_not_the_same_anomaly() -> None:
    stale = shrink.Anomaly(checker="linearizable", op="read")
    other = {"linearizable": {"valid": False, "counterexample": {"unlinearizable": [{"f": "cas"}]}}}
    assert not stale.seen_in(other)
    assert stale.seen_in(
        {"linearizable": {"valid": False, "counterexample": {"blocking": {"f": "read"}}}}
    )


def test_a_valid_run_has_nothing_to_shrink(tmp_path: Path) -> None:
    run = stale_read_run(tmp_path)
    (run / "results.json").write_text(json.dumps({"valid": True}))
    with pytest.raises(shrink.ConfigError, match="not invalid"):
        shrink.Shrinker(run)


def test_a_leader_relative_choice_is_shrunk_as_the_intent_not_the_node_it_hit() -> None:
    from squall.nemesis.schedule import Event

    executed = [
        {"at": "8s", "fault": "partition", "for": "3s", "grudge": {"n4": ["n1", "n2"]}},
        {"at": "14.001s", "fault": "kill", "for": "3s", "nodes": ["n2"]},
        {"at": "20s", "fault": "kill", "for": "3s", "nodes": ["n3"]},
    ]
    asked = [
        Event(8.0, "partition", 3.0, {"grudge": "leader"}),
        Event(14.0, "kill", 3.0, {"target": "leader"}),
        Event(20.0, "kill", 3.0, {"target": "random"}),
    ]
    from squall.nemesis.schedule import Schedule

    timeline = Schedule.from_dict({"events": executed})
    got = [e.to_dict() for e in timeline.with_intents(asked).events]
    assert got[0]["grudge"] == "leader", "a replay elects its own leader: cut that one"
    assert got[1] == {"at": "14.001s", "fault": "kill", "for": "3s", "target": "leader"}
    assert got[2]["nodes"] == ["n3"], "a random choice stays pinned, as it ran"


def test_a_replay_cuts_its_own_leader_where_the_run_asked_for_the_leader(tmp_path: Path) -> None:
    from squall.nemesis.schedule import load_schedule
    from squall.run.config import Test

    asked = tmp_path / "asked.yaml"
    asked.write_text(
        "events:\n  - {at: 8s, fault: partition, grudge: leader, for: 3s}\n"
        "  - {at: 14s, fault: kill, target: random, for: 3s}\n"
    )
    run = tmp_path / "run"
    run.mkdir()
    (run / "nemesis-timeline.yaml").write_text(
        yaml.safe_dump(
            {
                "seed": 0,
                "events": [
                    {
                        "at": "8.002s",
                        "fault": "partition",
                        "for": "3s",
                        "grudge": {"n4": ["n1"], "n1": ["n4"]},
                    },
                    {"at": "14s", "fault": "kill", "for": "3s", "nodes": ["n2"]},
                ],
            }
        )
    )
    events = load_schedule(Test(replay=str(run), nemesis_file=str(asked))).events
    assert events[0].params == {"grudge": "leader"}
    assert events[1].params == {"nodes": ["n2"]}


def test_a_smallest_schedule_that_reproduces_only_by_luck_gives_way_to_a_reliable_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lucky = {"left": 1}

    def fake(
        base: Any,
        events: list[dict[str, Any]],
        time_limit: float,
        seed: int,
        where: Path,
        console: Any,
    ) -> dict[str, Any]:
        part = [e for e in events if e["fault"] == "partition"]
        held = shrink._seconds(part[0]["for"]) if part else 0
        bad = bool(part) and (held >= 2 or (held >= 1 and lucky["left"] > 0))
        if part and held < 2 and bad:
            lucky["left"] -= 1  # the 1 s cut reproduced once, by luck
        return replay_result(bad)

    monkeypatch.setattr(shrink, "replay_once", fake)
    run = stale_read_run(tmp_path)
    shrink.Shrinker(run, tries=3, budget_s=60).run()
    shrunk = yaml.safe_load((run / "shrink" / "shrunk.yaml").read_text())
    assert shrunk["events"][0]["for"] == "2s"
    log = json.loads((run / "shrink" / "shrink.json").read_text())
    assert [c["reproduced"] for c in log["confirmations"]][-1] >= 2
