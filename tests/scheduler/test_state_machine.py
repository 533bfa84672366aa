"""The task state machine and job updates, applied as log entries to a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from squall.systems.aurora.store import scheduler as s
from tests.scheduler.conftest import Applier

JOB = {"role": "r", "env": "prod", "name": "web"}


def _job(apply: Applier, instances: int = 2) -> str:
    assert apply("sched.CreateJob", job={**JOB, "instances": instances})["ok"]
    return "r/prod/web"


def _task_ids(apply: Applier, update_id: str | None = None) -> list[str]:
    rows = apply.rows(
        "SELECT task_id FROM sched_tasks WHERE update_id IS ? ORDER BY instance", update_id
    )
    return [r[0] for r in rows]


def _status(apply: Applier, task: str) -> str:
    return str(apply.rows("SELECT status FROM sched_tasks WHERE task_id = ?", task)[0][0])


def test_each_transition_is_an_event_with_its_timestamp_and_log_index(apply: Applier) -> None:
    _job(apply, 1)
    [task] = _task_ids(apply)
    for frm, to in ((s.PENDING, s.ASSIGNED), (s.ASSIGNED, s.STARTING), (s.STARTING, s.RUNNING)):
        assert apply("sched.ChangeState", task_id=task, **{"from": frm, "to": to}) == {
            "ok": True,
            "status": to,
        }
    events = apply.rows(
        "SELECT seq, status, ts, log_index FROM sched_task_events WHERE task_id = ? ORDER BY seq",
        task,
    )
    # Entry i carries ts 1000 + i - 1 (the Applier's clock); the job was entry 1.
    assert events == [
        (1, "PENDING", 1000, 1),
        (2, "ASSIGNED", 1001, 2),
        (3, "STARTING", 1002, 3),
        (4, "RUNNING", 1003, 4),
    ]


@pytest.mark.parametrize(
    ("frm", "to"), [("PENDING", "RUNNING"), ("PENDING", "FINISHED"), ("ASSIGNED", "PENDING")]
)
def test_an_illegal_transition_is_refused_and_changes_nothing(
    apply: Applier, frm: str, to: str
) -> None:
    _job(apply, 1)
    [task] = _task_ids(apply)
    if frm == s.ASSIGNED:
        apply("sched.ChangeState", task_id=task, **{"from": s.PENDING, "to": s.ASSIGNED})
    before = apply.digest()
    result = apply("sched.ChangeState", task_id=task, **{"from": frm, "to": to})
    assert result["error"] == "bad_request" and f"{frm} -> {to}" in result["message"]
    assert apply.digest() == before


def test_a_terminal_task_never_moves_again(apply: Applier) -> None:
    _job(apply, 1)
    [task] = _task_ids(apply)
    apply("sched.ChangeState", task_id=task, **{"from": s.PENDING, "to": s.KILLED})
    for to in s.STATES:
        assert (
            apply("sched.ChangeState", task_id=task, **{"from": s.KILLED, "to": to})["error"]
            == "bad_request"
        )
    assert _status(apply, task) == s.KILLED


def test_a_cas_whose_from_is_stale_fails_with_the_current_state(apply: Applier) -> None:
    _job(apply, 1)
    [task] = _task_ids(apply)
    apply("sched.ChangeState", task_id=task, **{"from": s.PENDING, "to": s.ASSIGNED})
    result = apply("sched.ChangeState", task_id=task, **{"from": s.PENDING, "to": s.ASSIGNED})
    assert result["error"] == "precondition_failed" and result["current"] == s.ASSIGNED
    assert len(apply.rows("SELECT 1 FROM sched_task_events WHERE task_id = ?", task)) == 2


def test_an_unknown_task_is_not_found(apply: Applier) -> None:
    result = apply("sched.ChangeState", task_id="nope", **{"from": s.PENDING, "to": s.ASSIGNED})
    assert result["error"] == "not_found"


def test_an_update_rolls_forward_batch_by_batch_until_every_instance_runs(apply: Applier) -> None:
    job = _job(apply, 2)
    assert (
        apply("sched.StartJobUpdate", job=job, update_id="u1", instances=5, batch_size=2)["tasks"]
        == 5
    )
    assert {_status(apply, t) for t in _task_ids(apply)} == {
        s.KILLED
    }  # the old tasks were replaced
    tasks = _task_ids(apply, "u1")

    def updating() -> list[int]:
        return [
            r[0]
            for r in apply.rows(
                "SELECT instance FROM sched_instance_events WHERE update_id = 'u1'"
                " AND action = 'INSTANCE_UPDATING' ORDER BY seq"
            )
        ]

    assert updating() == [0, 1]
    for i, task in enumerate(tasks):
        for frm, to in ((s.PENDING, s.ASSIGNED), (s.ASSIGNED, s.STARTING), (s.STARTING, s.RUNNING)):
            apply("sched.ChangeState", task_id=task, **{"from": frm, "to": to})
        expected = "ROLLED_FORWARD" if i == 4 else "ROLLING_FORWARD"
        assert apply.rows("SELECT status FROM sched_updates")[0][0] == expected
    assert updating() == [0, 1, 2, 3, 4]
    statuses = [r[0] for r in apply.rows("SELECT status FROM sched_update_events ORDER BY seq")]
    assert statuses == ["ROLLING_FORWARD", "ROLLED_FORWARD"]


def test_an_instance_failing_before_it_runs_puts_the_update_in_error(apply: Applier) -> None:
    job = _job(apply, 0)
    apply("sched.StartJobUpdate", job=job, update_id="u1", instances=2, batch_size=1)
    task = _task_ids(apply, "u1")[0]
    apply("sched.ChangeState", task_id=task, **{"from": s.PENDING, "to": s.ASSIGNED})
    apply("sched.ChangeState", task_id=task, **{"from": s.ASSIGNED, "to": s.LOST})
    assert apply.rows("SELECT status FROM sched_updates") == [("ERROR",)]
    assert ("INSTANCE_UPDATE_FAILED",) in apply.rows("SELECT action FROM sched_instance_events")


def test_killing_a_job_kills_its_live_tasks_and_aborts_its_update(apply: Applier) -> None:
    job = _job(apply, 0)
    apply("sched.StartJobUpdate", job=job, update_id="u1", instances=3, batch_size=3)
    assert apply("sched.KillJob", job=job) == {"ok": True, "killed": 3}
    assert {_status(apply, t) for t in _task_ids(apply, "u1")} == {s.KILLED}
    assert apply.rows("SELECT status FROM sched_updates") == [("ABORTED",)]


def test_a_second_update_is_refused_while_one_rolls_forward(apply: Applier) -> None:
    job = _job(apply, 0)
    apply("sched.StartJobUpdate", job=job, update_id="u1", instances=1, batch_size=1)
    before = apply.digest()
    result = apply("sched.StartJobUpdate", job=job, update_id="u2", instances=1, batch_size=1)
    assert result["error"] == "precondition_failed" and result["update_id"] == "u1"
    assert apply.digest() == before


def test_a_rejected_op_inside_a_txn_undoes_the_whole_txn(apply: Applier) -> None:
    before = apply.digest()
    result = apply(
        "txn",
        ops=[
            {"op": "sched.CreateJob", "job": {**JOB, "instances": 3}, "ts": 5},
            {
                "op": "sched.ChangeState",
                "task_id": "nope",
                "from": "PENDING",
                "to": "ASSIGNED",
                "ts": 5,
            },
        ],
    )
    assert result["error"] == "not_found"
    assert apply.digest() == before


def test_pruning_keeps_the_newest_finished_updates_per_job(apply: Applier) -> None:
    job = _job(apply, 0)
    for uid in ("u1", "u2", "u3"):
        apply("sched.StartJobUpdate", job=job, update_id=uid, instances=1, batch_size=1)
        apply("sched.AbortJobUpdate", update_id=uid)
    result = apply("sched.PruneJobUpdateHistory", per_job_retain=2, before_ts=0)
    assert result["pruned"] == ["u1"]
    assert apply.rows("SELECT update_id FROM sched_updates ORDER BY update_id") == [
        ("u2",),
        ("u3",),
    ]
    assert apply.rows("SELECT count(*) FROM sched_update_events WHERE update_id = 'u1'") == [(0,)]


def test_quotas_are_saved_and_removed_per_role(apply: Applier) -> None:
    apply("sched.SaveQuota", role="r", quota={"cpu": 2.5, "ram_mb": 1024, "disk_mb": 4096})
    assert apply.rows("SELECT * FROM sched_quotas") == [("r", 2.5, 1024, 4096)]
    apply("sched.RemoveQuota", role="r")
    assert apply.rows("SELECT * FROM sched_quotas") == []


def test_replicas_that_batch_entries_differently_record_the_same_event_indexes(
    tmp_path: Path,
) -> None:
    """Entries are applied in runs sharing a transaction; an event's log index must be
    its own entry's, not whatever the run has recorded so far (that differs per replica)."""
    from squall.systems.aurora.store.statemachine import StateMachine
    from squall.systems.aurora.store.wal import Entry

    ts = 1_700_000_000_000
    job = {
        "op": "sched.CreateJob",
        "job": {"role": "t", "env": "e", "name": "j", "instances": 3},
        "ts": ts,
    }
    entries = [Entry(1, 1, job)]
    machines = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        sm = StateMachine(tmp_path / name, digest_every=0)
        sm.open_empty()
        machines.append(sm)
    a, b = machines
    a.apply(entries)
    b.apply(entries)
    tasks = a.read(
        lambda c: [r[0] for r in c.execute("SELECT task_id FROM sched_tasks ORDER BY task_id")]
    )
    steps = [
        Entry(
            i + 2,
            1,
            {
                "op": "sched.ChangeState",
                "task_id": t,
                "from": "PENDING",
                "to": "ASSIGNED",
                "ts": ts + i,
            },
        )
        for i, t in enumerate(tasks)
    ]
    a.apply(steps)  # one run
    for e in steps:  # one entry at a time
        b.apply([e])
    assert a.digest() == b.digest()
    events = a.read(
        lambda c: c.execute(
            "SELECT log_index FROM sched_task_events WHERE status = 'ASSIGNED' ORDER BY log_index"
        ).fetchall()
    )
    assert [r[0] for r in events] == [e.index for e in steps]
