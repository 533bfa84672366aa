"""The scheduler domain: jobs, tasks, job updates and quotas, applied through the log.

Modelled on Aurora's scheduler storage (see ``/work/shared/AURORA.md``). The
low-level ops keep Aurora's storage vocabulary — SaveJob, RemoveJob,
SaveTasks, RemoveTasks, SaveJobUpdate, SaveJobUpdateEvent,
SaveJobInstanceUpdateEvent, SaveQuota, RemoveQuota, PruneJobUpdateHistory —
and the ``rows`` snapshot codec restores a state through exactly these. The
API speaks in a few scheduler-level ops (CreateJob, KillJob, StartJobUpdate,
AbortJobUpdate, ChangeState = Aurora's ``StateManager.changeState`` with its
CAS state) that are compositions of the low-level ones inside one entry.

Task states kept (a documented subset of Aurora's): PENDING, ASSIGNED,
STARTING, RUNNING and the terminal FINISHED, FAILED, KILLED, LOST. Left out:
KILLING (there is no executor to confirm a kill, so a kill is final at once),
THROTTLED, PREEMPTING, RESTARTING, DRAINING and INIT (no agents, no
preemption, no maintenance here).

Every task transition and every update status change is an event carrying the
leader's timestamp (``ts``, ms, put into the command before it was appended)
and the log index it was applied at, read from ``schema.APPLYING_INDEX`` (the
entry being applied), so every replica records the same index.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from . import schema
from .schema import Rejected, canonical

PENDING, ASSIGNED, STARTING, RUNNING = "PENDING", "ASSIGNED", "STARTING", "RUNNING"
FINISHED, FAILED, KILLED, LOST = "FINISHED", "FAILED", "KILLED", "LOST"
TERMINAL = frozenset({FINISHED, FAILED, KILLED, LOST})
TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({ASSIGNED, KILLED}),
    ASSIGNED: frozenset({STARTING, FAILED, KILLED, LOST}),
    STARTING: frozenset({RUNNING, FAILED, KILLED, LOST}),
    RUNNING: frozenset({FINISHED, FAILED, KILLED, LOST}),
    **{s: frozenset() for s in TERMINAL},
}
STATES = tuple(TRANSITIONS)

ROLLING_FORWARD, ROLLED_FORWARD, ABORTED, ERROR = (
    "ROLLING_FORWARD",
    "ROLLED_FORWARD",
    "ABORTED",
    "ERROR",
)
UPDATE_STATES = (ROLLING_FORWARD, ROLLED_FORWARD, ABORTED, ERROR)
INSTANCE_UPDATING, INSTANCE_UPDATED, INSTANCE_UPDATE_FAILED = (
    "INSTANCE_UPDATING",
    "INSTANCE_UPDATED",
    "INSTANCE_UPDATE_FAILED",
)
INSTANCE_ACTIONS = (INSTANCE_UPDATING, INSTANCE_UPDATED, INSTANCE_UPDATE_FAILED)
MAX_INSTANCES = 10_000
NAME = re.compile(r"^[A-Za-z0-9_.]{1,64}$")  # no '-' or '/': they separate parts of ids

schema.table(
    "sched_jobs",
    "CREATE TABLE sched_jobs (job TEXT PRIMARY KEY, role TEXT NOT NULL, env TEXT NOT NULL,"
    " name TEXT NOT NULL, instances INTEGER NOT NULL, task_config TEXT NOT NULL)",
    ("job",),
)
schema.table(
    "sched_tasks",
    "CREATE TABLE sched_tasks (task_id TEXT PRIMARY KEY, job TEXT NOT NULL,"
    " instance INTEGER NOT NULL, status TEXT NOT NULL, update_id TEXT)",
    ("task_id",),
)
schema.table(
    "sched_task_events",
    "CREATE TABLE sched_task_events (task_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " status TEXT NOT NULL, ts INTEGER NOT NULL, log_index INTEGER NOT NULL,"
    " PRIMARY KEY (task_id, seq)) WITHOUT ROWID",
    ("task_id", "seq"),
)
schema.table(
    "sched_updates",
    "CREATE TABLE sched_updates (update_id TEXT PRIMARY KEY, job TEXT NOT NULL,"
    " instances INTEGER NOT NULL, batch_size INTEGER NOT NULL, status TEXT NOT NULL)",
    ("update_id",),
)
schema.table(
    "sched_update_events",
    "CREATE TABLE sched_update_events (update_id TEXT NOT NULL,"
    " seq INTEGER NOT NULL, status TEXT NOT NULL, ts INTEGER NOT NULL, log_index INTEGER NOT NULL,"
    " PRIMARY KEY (update_id, seq)) WITHOUT ROWID",
    ("update_id", "seq"),
)
schema.table(
    "sched_instance_events",
    "CREATE TABLE sched_instance_events (update_id TEXT NOT NULL,"
    " seq INTEGER NOT NULL, instance INTEGER NOT NULL, action TEXT NOT NULL, ts INTEGER NOT NULL,"
    " log_index INTEGER NOT NULL, PRIMARY KEY (update_id, seq)) WITHOUT ROWID",
    ("update_id", "seq"),
)
schema.table(
    "sched_quotas",
    "CREATE TABLE sched_quotas (role TEXT PRIMARY KEY, cpu REAL NOT NULL,"
    " ram_mb INTEGER NOT NULL, disk_mb INTEGER NOT NULL)",
    ("role",),
)


def legal(frm: str, to: str) -> bool:
    return to in TRANSITIONS.get(frm, frozenset())


def job_key(role: str, env: str, name: str) -> str:
    return f"{role}/{env}/{name}"


def _log_index(conn: sqlite3.Connection, cmd: dict[str, Any]) -> int:
    """The index this entry is applied at: ``at_index`` when restoring an event, else the
    entry's own (``schema.APPLYING_INDEX``; ``_meta`` lags inside a run of entries)."""
    if "at_index" in cmd:
        return int(cmd["at_index"])
    return schema.APPLYING_INDEX.get()


def _one(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> Any:
    return conn.execute(sql, args).fetchone()


def _job_row(conn: sqlite3.Connection, job: str) -> Any:
    row = _one(conn, "SELECT job, instances FROM sched_jobs WHERE job = ?", (job,))
    if row is None:
        raise Rejected(
            "not_found", {"message": f"job {job} does not exist; create it with POST /jobs"}
        )
    return row


# -- Aurora's storage ops ----------------------------------------------------------
@schema.op("sched.SaveJob")
def save_job(conn: sqlite3.Connection, cmd: dict[str, Any]) -> Any:
    j = cmd["job"]
    conn.execute(
        "INSERT OR REPLACE INTO sched_jobs VALUES (?, ?, ?, ?, ?, ?)",
        (
            job_key(j["role"], j["env"], j["name"]),
            j["role"],
            j["env"],
            j["name"],
            int(j["instances"]),
            canonical(j.get("task_config") or {}),
        ),
    )
    return {"ok": True}


@schema.op("sched.RemoveJob")
def remove_job(conn: sqlite3.Connection, cmd: dict[str, Any]) -> Any:
    conn.execute("DELETE FROM sched_jobs WHERE job = ?", (cmd["job"],))
    return {"ok": True}


@schema.op("sched.SaveTasks")
def save_tasks(conn: sqlite3.Connection, cmd: dict[str, Any]) -> Any:
    """Whole tasks, events included (Aurora's ScheduledTask carries its taskEvents)."""
    for t in cmd["tasks"]:
        events = t["events"]
        if not events or events[-1]["status"] != t["status"]:
            raise Rejected(
                "bad_request", {"message": f"task {t['task_id']}: status must be its last event's"}
            )
        conn.execute(
            "INSERT OR REPLACE INTO sched_tasks VALUES (?, ?, ?, ?, ?)",
            (t["task_id"], t["job"], int(t["instance"]), t["status"], t.get("update_id")),
        )
        conn.execute("DELETE FROM sched_task_events WHERE task_id = ?", (t["task_id"],))
        conn.executemany(
            "INSERT INTO sched_task_events VALUES (?, ?, ?, ?, ?)",
            [
                (t["task_id"], seq, e["status"], int(e["ts"]), int(e["index"]))
                for seq, e in enumerate(events, 1)
            ],
        )
    return {"ok": True, "saved": len(cmd["tasks"])}


@schema.op("sched.RemoveTasks")
def remove_tasks(conn: sqlite3.Connection, cmd: dict[str, Any]) -> Any:
    ids = [(t,) for t in cmd["task_ids"]]
    conn.executemany("DELETE FROM sched_tasks WHERE task_id = ?", ids)
    conn.executemany("DELETE FROM sched_task_events WHERE task_id = ?", ids)
    return {"ok": True}


@schema.op("sched.SaveJobUpdate")
def save_job_update(conn: sqlite3.Connection, cmd: dict[str, Any]) -> Any:
    """The update's summary row; its status then only moves through SaveJobUpdateEvent."""
    u = cmd["update"]
    conn.execute(
        "INSERT INTO sched_updates VALUES (?, ?, ?, ?, ?)",
        (u["update_id"], u["job"], int(u["instances"]), int(u["batch_size"]), u["status"]),
    )
    return {"ok": True}


def _next_seq(conn: sqlite3.Connection, table: str, update_id: str) -> int:
    row = _one(conn, f"SELECT coalesce(max(seq), 0) FROM {table} WHERE update_id = ?", (update_id,))  # noqa: S608
    return int(row[0]) + 1


@schema.op("sched.SaveJobUpdateEvent")
def save_job_update_event(conn: sqlite3.Connection, cmd: dict[str, Any]) -> Any:
    uid, status = cmd["update_id"], cmd["status"]
    conn.execute(
        "INSERT INTO sched_update_events VALUES (?, ?, ?, ?, ?)",
        (
            uid,
            _next_seq(conn, "sched_update_events", uid),
            status,
            int(cmd["ts"]),
            _log_index(conn, cmd),
        ),
    )
    conn.execute("UPDATE sched_updates SET status = ? WHERE update_id = ?", (status, uid))
    return {"ok": True}


@schema.op("sched.SaveJobInstanceUpdateEvent")
def save_instance_event(conn: sqlite3.Connection, cmd: dict[str, Any]) -> Any:
    uid = cmd["update_id"]
    conn.execute(
        "INSERT INTO sched_instance_events VALUES (?, ?, ?, ?, ?, ?)",
        (
            uid,
            _next_seq(conn, "sched_instance_events", uid),
            int(cmd["instance"]),
            cmd["action"],
            int(cmd["ts"]),
            _log_index(conn, cmd),
        ),
    )
    return {"ok": True}


@schema.op("sched.SaveQuota")
def save_quota(conn: sqlite3.Connection, cmd: dict[str, Any]) -> Any:
    q = cmd["quota"]
    conn.execute(
        "INSERT OR REPLACE INTO sched_quotas VALUES (?, ?, ?, ?)",
        (cmd["role"], float(q["cpu"]), int(q["ram_mb"]), int(q["disk_mb"])),
    )
    return {"ok": True}


@schema.op("sched.RemoveQuota")
def remove_quota(conn: sqlite3.Connection, cmd: dict[str, Any]) -> Any:
    conn.execute("DELETE FROM sched_quotas WHERE role = ?", (cmd["role"],))
    return {"ok": True}


@schema.op("sched.PruneJobUpdateHistory")
def prune_job_update_history(conn: sqlite3.Connection, cmd: dict[str, Any]) -> Any:
    """Drops finished updates beyond the newest ``per_job_retain`` of their job, or last touched before ``before_ts``."""
    retain, before = int(cmd["per_job_retain"]), int(cmd["before_ts"])
    rows = conn.execute(
        "SELECT u.update_id, u.job, u.status, min(e.log_index), max(e.ts) FROM sched_updates u"
        " JOIN sched_update_events e USING (update_id) GROUP BY u.update_id ORDER BY u.job, min(e.log_index) DESC"
    ).fetchall()
    kept: dict[str, int] = {}
    pruned = []
    for uid, job, status, _first, last_ts in rows:
        kept[job] = kept.get(job, 0) + 1
        if status != ROLLING_FORWARD and (kept[job] > retain or last_ts < before):
            pruned.append((uid,))
    for table in ("sched_updates", "sched_update_events", "sched_instance_events"):
        conn.executemany(f"DELETE FROM {table} WHERE update_id = ?", pruned)  # noqa: S608 (fixed names)
    return {"ok": True, "pruned": sorted(p[0] for p in pruned)}


# -- the scheduler's ops (what the API appends) ------------------------------------
def _new_tasks(
    job: str, instances: range, update_id: str | None, ts: int, index: int
) -> list[dict[str, Any]]:
    # The id is unique: one entry creates at most one task per instance of a job.
    return [
        {
            "task_id": f"{job.replace('/', '-')}-{i}-{index}",
            "job": job,
            "instance": i,
            "status": PENDING,
            "update_id": update_id,
            "events": [{"status": PENDING, "ts": ts, "index": index}],
        }
        for i in instances
    ]


@schema.op("sched.CreateJob")
def create_job(conn: sqlite3.Connection, cmd: dict[str, Any]) -> Any:
    j = cmd["job"]
    key = job_key(j["role"], j["env"], j["name"])
    if _one(conn, "SELECT 1 FROM sched_jobs WHERE job = ?", (key,)):
        raise Rejected(
            "precondition_failed", {"message": f"job {key} already exists; kill it or update it"}
        )
    save_job(conn, cmd)
    tasks = _new_tasks(key, range(int(j["instances"])), None, int(cmd["ts"]), _log_index(conn, cmd))
    save_tasks(conn, {"tasks": tasks})
    return {"ok": True, "job": key, "tasks": len(tasks)}


def _set_state(conn: sqlite3.Connection, task_id: str, status: str, ts: int, index: int) -> None:
    seq = _one(conn, "SELECT max(seq) FROM sched_task_events WHERE task_id = ?", (task_id,))[0]
    conn.execute("UPDATE sched_tasks SET status = ? WHERE task_id = ?", (status, task_id))
    conn.execute(
        "INSERT INTO sched_task_events VALUES (?, ?, ?, ?, ?)",
        (task_id, seq + 1, status, ts, index),
    )


def _active_update(conn: sqlite3.Connection, job: str) -> str | None:
    row = _one(
        conn,
        "SELECT update_id FROM sched_updates WHERE job = ? AND status = ?",
        (job, ROLLING_FORWARD),
    )
    return None if row is None else str(row[0])


@schema.op("sched.KillJob")
def kill_job(conn: sqlite3.Connection, cmd: dict[str, Any]) -> Any:
    job, ts = _job_row(conn, cmd["job"])[0], int(cmd["ts"])
    index = _log_index(conn, cmd)
    live = [
        r[0]
        for r in conn.execute(
            "SELECT task_id FROM sched_tasks WHERE job = ? AND status NOT IN"
            " (?, ?, ?, ?) ORDER BY task_id",
            (job, *sorted(TERMINAL)),
        )
    ]
    for task_id in live:
        _set_state(conn, task_id, KILLED, ts, index)
    uid = _active_update(conn, job)
    if uid is not None:
        save_job_update_event(conn, {"update_id": uid, "status": ABORTED, "ts": ts})
    return {"ok": True, "killed": len(live)}


@schema.op("sched.StartJobUpdate")
def start_job_update(conn: sqlite3.Connection, cmd: dict[str, Any]) -> Any:
    """Replaces the job's live tasks by ``instances`` new PENDING ones; batch 0 starts updating."""
    job, _old = _job_row(conn, cmd["job"])
    uid, n, batch, ts = (
        cmd["update_id"],
        int(cmd["instances"]),
        int(cmd["batch_size"]),
        int(cmd["ts"]),
    )
    if (busy := _active_update(conn, job)) is not None:
        raise Rejected(
            "precondition_failed",
            {
                "message": f"job {job} already has update {busy} rolling forward; abort it first",
                "update_id": busy,
            },
        )
    if _one(conn, "SELECT 1 FROM sched_updates WHERE update_id = ?", (uid,)):
        raise Rejected(
            "precondition_failed", {"message": f"update id {uid} is taken; pick another"}
        )
    index = _log_index(conn, cmd)
    for (task_id,) in conn.execute(
        "SELECT task_id FROM sched_tasks WHERE job = ? AND status NOT IN (?, ?, ?, ?)"
        " ORDER BY task_id",
        (job, *sorted(TERMINAL)),
    ).fetchall():
        _set_state(conn, task_id, KILLED, ts, index)
    conn.execute("UPDATE sched_jobs SET instances = ? WHERE job = ?", (n, job))
    save_job_update(
        conn,
        {
            "update": {
                "update_id": uid,
                "job": job,
                "instances": n,
                "batch_size": batch,
                "status": ROLLING_FORWARD,
            }
        },
    )
    save_job_update_event(conn, {"update_id": uid, "status": ROLLING_FORWARD, "ts": ts})
    save_tasks(conn, {"tasks": _new_tasks(job, range(n), uid, ts, index)})
    for i in range(min(batch, n)):
        save_instance_event(
            conn, {"update_id": uid, "instance": i, "action": INSTANCE_UPDATING, "ts": ts}
        )
    return {"ok": True, "update_id": uid, "tasks": n}


@schema.op("sched.AbortJobUpdate")
def abort_job_update(conn: sqlite3.Connection, cmd: dict[str, Any]) -> Any:
    uid = cmd["update_id"]
    row = _one(conn, "SELECT status FROM sched_updates WHERE update_id = ?", (uid,))
    if row is None:
        raise Rejected("not_found", {"message": f"update {uid} does not exist"})
    if row[0] != ROLLING_FORWARD:
        raise Rejected(
            "precondition_failed",
            {"message": f"update {uid} is {row[0]}, not rolling forward", "current": row[0]},
        )
    save_job_update_event(conn, {"update_id": uid, "status": ABORTED, "ts": cmd["ts"]})
    return {"ok": True}


@schema.op("sched.ChangeState")
def change_state(conn: sqlite3.Connection, cmd: dict[str, Any]) -> Any:
    """Compare-and-set on a task's status (Aurora's changeState with casState), plus update progress."""
    task_id, frm, to, ts = cmd["task_id"], cmd["from"], cmd["to"], int(cmd["ts"])
    row = _one(
        conn, "SELECT status, update_id, instance FROM sched_tasks WHERE task_id = ?", (task_id,)
    )
    if row is None:
        raise Rejected("not_found", {"message": f"task {task_id} does not exist"})
    current, uid, instance = row
    if current != frm:
        raise Rejected(
            "precondition_failed",
            {"message": f"task {task_id} is {current}, not {frm}", "current": current},
        )
    if not legal(frm, to):
        raise Rejected(
            "bad_request",
            {
                "message": f"{frm} -> {to} is not a legal task transition; from {frm} "
                f"a task may go to {', '.join(sorted(TRANSITIONS[frm])) or 'nothing'}"
            },
        )
    index = _log_index(conn, cmd)
    _set_state(conn, task_id, to, ts, index)
    if uid is not None:
        _update_progress(conn, uid, instance, to, ts)
    return {"ok": True, "status": to}


def _update_progress(conn: sqlite3.Connection, uid: str, instance: int, to: str, ts: int) -> None:
    """An update's instance reached RUNNING (updated) or died first (failed): record it, move the batch on."""
    n, batch, status = _one(
        conn, "SELECT instances, batch_size, status FROM sched_updates WHERE update_id = ?", (uid,)
    )
    if status != ROLLING_FORWARD or (to != RUNNING and to not in TERMINAL):
        return
    if to != RUNNING:
        save_instance_event(
            conn,
            {"update_id": uid, "instance": instance, "action": INSTANCE_UPDATE_FAILED, "ts": ts},
        )
        save_job_update_event(conn, {"update_id": uid, "status": ERROR, "ts": ts})
        return
    save_instance_event(
        conn, {"update_id": uid, "instance": instance, "action": INSTANCE_UPDATED, "ts": ts}
    )
    done = _one(
        conn,
        "SELECT count(*) FROM sched_instance_events WHERE update_id = ? AND action = ?",
        (uid, INSTANCE_UPDATED),
    )[0]
    if done == n:
        save_job_update_event(conn, {"update_id": uid, "status": ROLLED_FORWARD, "ts": ts})
    elif done % batch == 0:
        # A batch's worth is done: the next batch starts (Aurora moves on batch by batch).
        for i in range(done, min(done + batch, n)):
            save_instance_event(
                conn, {"update_id": uid, "instance": i, "action": INSTANCE_UPDATING, "ts": ts}
            )


# Importing the domain also makes its snapshot codec available.
from . import rows_codec  # noqa: E402,F401
