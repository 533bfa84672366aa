"""The read-storm workload: its op plan, its own checkers, and a whole run on real nodes."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from squall.checkers.base import CheckContext
from squall.history import Op
from squall.systems.aurora.workload import SchedulerWorkload, check_details, task_linearizability

GOOD = {
    "index": 9,
    "status": "ROLLING_FORWARD",
    "instances": 4,
    "batch_size": 2,
    "counts": {"PENDING": 2, "RUNNING": 2},
    "events": 10,
    "bad_tasks": 0,
    "updating": 4,
    "updated": 2,
    "failed": 0,
}


def _history(*ops: tuple[int, str, str, Any, int, str | None]) -> list[Op]:
    """(process, type, f, value, time, error) tuples as a history."""
    return [
        Op(process=p, type=t, f=f, value=v, time=tm, index=i, error=e)
        for i, (p, t, f, v, tm, e) in enumerate(ops)
    ]


def test_details_consistent_with_one_state_pass() -> None:
    h = _history((1, "invoke", "details", "u", 0, None), (1, "ok", "details", GOOD, 5, None))
    assert check_details(CheckContext(history=h))["valid"] is True


def test_details_whose_tables_disagree_are_torn() -> None:
    torn = {
        **GOOD,
        "updated": 1,
    }  # two tasks RUNNING but one INSTANCE_UPDATED event: two states mixed
    h = _history((1, "invoke", "details", "u", 0, None), (1, "ok", "details", torn, 5, None))
    res = check_details(CheckContext(history=h))
    assert res["valid"] is False and "INSTANCE_UPDATED" in res["why"]


def test_details_that_go_back_in_time_are_a_stale_read() -> None:
    later = {**GOOD, "events": 8, "counts": {"PENDING": 2, "RUNNING": 2}}
    h = _history(
        (1, "invoke", "details", "u", 0, None),
        (1, "ok", "details", GOOD, 5, None),
        (2, "invoke", "details", "u", 6, None),
        (2, "ok", "details", later, 9, None),
    )
    res = check_details(CheckContext(history=h))
    assert res["valid"] is False and "stale read" in res["why"]


def _cas(
    p: int, task: str, t0: int, outcome: str
) -> list[tuple[int, str, str, Any, int, str | None]]:
    v = [task, {"from": "PENDING", "to": "ASSIGNED"}]
    err = "precondition_failed" if outcome == "fail" else None
    return [(p, "invoke", "transition", v, t0, None), (p, outcome, "transition", v, t0 + 1, err)]


def test_two_winners_of_one_transition_are_not_linearizable() -> None:
    h = _history(*_cas(1, "t1", 0, "ok"), *_cas(2, "t1", 10, "ok"))
    assert task_linearizability(10)(CheckContext(history=h))["valid"] is False


def test_one_winner_and_one_refused_transition_are_linearizable() -> None:
    h = _history(
        *_cas(1, "t1", 0, "ok"),
        *_cas(2, "t1", 10, "fail"),
        (3, "invoke", "read", ["t1", None], 20, None),
        (3, "ok", "read", ["t1", "ASSIGNED"], 21, None),
    )
    assert task_linearizability(10)(CheckContext(history=h))["valid"] is True


def test_a_read_before_any_transition_must_see_pending() -> None:
    h = _history(
        (3, "invoke", "read", ["t1", None], 0, None), (3, "ok", "read", ["t1", "ASSIGNED"], 1, None)
    )
    assert task_linearizability(10)(CheckContext(history=h))["valid"] is False


def test_drivers_of_a_group_race_the_same_transitions_and_readers_only_read_details() -> None:
    w = SchedulerWorkload(6, {"readers": 2, "instances": 8, "batch_size": 4, "read_p": 0})
    w.task_ids = [f"t{i}" for i in range(8)]
    plan = {
        k: [op for n in range(4) if (op := w.next_op(k, n, random.Random(k))) is not None]
        for k in range(6)
    }
    assert plan[0] == plan[1] and plan[2] == plan[3] and plan[0] != plan[2]
    assert [i.value for i in plan[0][:3]] == [
        ["t0", {"from": f, "to": t}]
        for f, t in (("PENDING", "ASSIGNED"), ("ASSIGNED", "STARTING"), ("STARTING", "RUNNING"))
    ]
    assert {i.f for i in plan[4] + plan[5]} == {"details"}


def test_a_whole_run_on_local_nodes_is_valid(tmp_path: Path) -> None:
    from squall.run.config import Test
    from squall.run.runner import run

    cfg = Test(
        workload="scheduler",
        backend="local",
        nodes=3,
        time_limit=6,
        concurrency=10,
        rate=0,
        seed=7,
        store=str(tmp_path),
        name="sched",
        system_options={"snapshot_every": 300},
        workload_options={"readers": 4, "instances": 120, "batch_size": 40},
    )
    code = run(cfg)
    results = json.loads(next(tmp_path.glob("sched/*/results.json")).read_text())
    assert code == 0, {
        k: (v.get("valid"), v.get("why")) for k, v in results.items() if isinstance(v, dict)
    }
    assert results["details"]["details_ok"] > 0 and results["linearizable"]["ops"] > 100
