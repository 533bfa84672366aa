"""The ``rows`` snapshot codec: every object serialized, re-inserted one by one on restore.

This is Aurora's old snapshot path, kept on purpose so its cost can be
measured against ``dump``: encode walks the state and writes one JSON object
a line (jobs, tasks with their events, updates with their update and instance
events, quotas, key-value pairs, applied request ids); restore creates an
empty schema and feeds each object through the same apply function the log
uses, one transaction per object. That is what made Aurora's failover slow
(it grows with the number of objects, not the bytes), and what ``dump`` — a
database image written as the file — avoids.

Tables no domain object covers are carried as plain rows (``{"table", "row"}``)
and re-inserted row by row, so a newly registered table is never dropped
silently: the digest comparison between codecs would catch it anyway.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import codecs, schema
from .statemachine import applied_of, connect, create_schema

FORMAT = "squall-rows/1"
# Tables whose rows are carried inside domain objects below.
_OBJECT_TABLES = {
    "kv",
    "sched_jobs",
    "sched_tasks",
    "sched_task_events",
    "sched_updates",
    "sched_update_events",
    "sched_instance_events",
    "sched_quotas",
}


def _jobs(conn: sqlite3.Connection) -> Iterator[dict[str, Any]]:
    for _job, role, env, name, instances, cfg in conn.execute(
        "SELECT * FROM sched_jobs ORDER BY job"
    ):
        yield {
            "kind": "job",
            "job": {
                "role": role,
                "env": env,
                "name": name,
                "instances": instances,
                "task_config": json.loads(cfg),
            },
        }


def _tasks(conn: sqlite3.Connection) -> Iterator[dict[str, Any]]:
    events = conn.execute(
        "SELECT task_id, status, ts, log_index FROM sched_task_events ORDER BY task_id, seq"
    )
    pending = next(events, None)
    for task_id, job, instance, status, uid in conn.execute(
        "SELECT * FROM sched_tasks ORDER BY task_id"
    ):
        evs = []
        while pending is not None and pending[0] <= task_id:
            if pending[0] == task_id:
                evs.append({"status": pending[1], "ts": pending[2], "index": pending[3]})
            pending = next(events, None)
        yield {
            "kind": "task",
            "task": {
                "task_id": task_id,
                "job": job,
                "instance": instance,
                "status": status,
                "update_id": uid,
                "events": evs,
            },
        }


def _updates(conn: sqlite3.Connection) -> Iterator[dict[str, Any]]:
    for uid, job, instances, batch, status in conn.execute(
        "SELECT * FROM sched_updates ORDER BY update_id"
    ):
        evs = [
            {"status": s, "ts": ts, "index": i}
            for s, ts, i in conn.execute(
                "SELECT status, ts, log_index FROM sched_update_events WHERE update_id = ? ORDER BY seq",
                (uid,),
            )
        ]
        inst = [
            {"instance": n, "action": a, "ts": ts, "index": i}
            for n, a, ts, i in conn.execute(
                "SELECT instance, action, ts, log_index FROM sched_instance_events WHERE update_id = ? ORDER BY seq",
                (uid,),
            )
        ]
        yield {
            "kind": "update",
            "update": {
                "update_id": uid,
                "job": job,
                "instances": instances,
                "batch_size": batch,
                "status": status,
            },
            "events": evs,
            "instance_events": inst,
        }


def objects(conn: sqlite3.Connection) -> Iterator[dict[str, Any]]:
    """Every object of the state, in a fixed order (the snapshot is deterministic too)."""
    index, term = applied_of(conn)
    yield {"kind": "meta", "format": FORMAT, "applied_index": index, "applied_term": term}
    for key, value in conn.execute("SELECT key, value FROM kv ORDER BY key"):
        yield {"kind": "kv", "key": key, "value": json.loads(value)}
    yield from _jobs(conn)
    yield from _tasks(conn)
    yield from _updates(conn)
    for role, cpu, ram, disk in conn.execute("SELECT * FROM sched_quotas ORDER BY role"):
        yield {"kind": "quota", "role": role, "quota": {"cpu": cpu, "ram_mb": ram, "disk_mb": disk}}
    for t in sorted(schema.TABLES, key=lambda t: t.name):
        if t.name not in _OBJECT_TABLES:
            for row in conn.execute(f"SELECT * FROM {t.name} ORDER BY {', '.join(t.key)}"):  # noqa: S608
                yield {"kind": "row", "table": t.name, "row": list(row)}


def _restore_one(conn: sqlite3.Connection, obj: dict[str, Any]) -> None:
    """One object through the apply functions the log uses."""
    ops, kind = schema.OPS, obj["kind"]
    if kind == "kv":
        ops["kv.put"](conn, {"key": obj["key"], "value": obj["value"]})
    elif kind == "job":
        ops["sched.SaveJob"](conn, {"job": obj["job"]})
    elif kind == "task":
        ops["sched.SaveTasks"](conn, {"tasks": [obj["task"]]})
    elif kind == "update":
        uid = obj["update"]["update_id"]
        ops["sched.SaveJobUpdate"](conn, {"update": obj["update"]})
        for e in obj["events"]:
            ops["sched.SaveJobUpdateEvent"](
                conn,
                {"update_id": uid, "status": e["status"], "ts": e["ts"], "at_index": e["index"]},
            )
        for e in obj["instance_events"]:
            ops["sched.SaveJobInstanceUpdateEvent"](
                conn,
                {
                    "update_id": uid,
                    "instance": e["instance"],
                    "action": e["action"],
                    "ts": e["ts"],
                    "at_index": e["index"],
                },
            )
    elif kind == "quota":
        ops["sched.SaveQuota"](conn, {"role": obj["role"], "quota": obj["quota"]})
    elif kind == "row":
        marks = ", ".join("?" * len(obj["row"]))
        conn.execute(f"INSERT INTO {obj['table']} VALUES ({marks})", obj["row"])  # noqa: S608 (registered)
    else:
        raise ValueError(
            f"rows snapshot holds an object of unknown kind {kind!r}; was it written by a newer node?"
        )


class RowsCodec:
    name = "rows"

    def encode(self, conn: sqlite3.Connection) -> bytes:
        return b"".join(schema.canonical(o).encode() + b"\n" for o in objects(conn))

    def restore(self, data: bytes, db_path: Path) -> None:
        lines = data.splitlines()
        try:
            meta = json.loads(lines[0])
        except (IndexError, ValueError):
            meta = {}
        if not isinstance(meta, dict) or meta.get("kind") != "meta" or meta.get("format") != FORMAT:
            raise ValueError(
                f"not a {FORMAT} snapshot (it starts {data[:40]!r}); was it written by "
                "another codec? Its header names the codec to restore it with"
            )
        conn = connect(db_path)
        try:
            create_schema(conn)
            for line in lines[1:]:
                conn.execute("BEGIN")  # one object, one transaction: Aurora's pace
                _restore_one(conn, json.loads(line))
                conn.execute("COMMIT")
            conn.execute(
                "UPDATE _meta SET v = ? WHERE k = 'applied_index'", (meta["applied_index"],)
            )
            conn.execute("UPDATE _meta SET v = ? WHERE k = 'applied_term'", (meta["applied_term"],))
        finally:
            conn.close()


codecs.CODECS["rows"] = RowsCodec()
