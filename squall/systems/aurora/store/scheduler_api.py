"""HTTP routes of the scheduler domain, mounted on the key-value API's server.

Writes go through ``Api._write`` (one log entry each, the error codes of
docs/contracts.md §2). Input is validated here, before anything is appended,
so bad input changes nothing; what depends on the state (unknown job or
task, a CAS whose ``from`` is not the current status) is refused by the apply
function, alike on every replica. Reads are linearizable: a ReadIndex round,
then one read transaction on a reader connection, so a read never mixes two
states (getJobUpdateDetails is never torn) and never blocks the writer.

Aurora's writes starved under a storm of getJobUpdateDetails calls. Here the
storm is kept off the writer's path five ways: SQLite's WAL (no lock a
writer waits for), the answer built as JSON by SQLite outside Python's GIL,
concurrent calls sharing one read (``SingleFlight``), reads of one update
paced ``DETAILS_GAP`` apart (callers meanwhile share the next), and at most
``DETAILS_AT_ONCE`` calls served at a time on reader threads of lower CPU
priority. ``bench/starvation.py`` measures the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from . import bugs, scheduler
from .api import ApiError, json_body
from .limits import BODY_LIMIT
from .raft import NotLeader
from .statemachine import applied_of

if TYPE_CHECKING:
    from .api import Api

T = TypeVar("T")
DETAILS_AT_ONCE = 4
# At most one getJobUpdateDetails read of an update per this many seconds; the
# callers arriving meanwhile share the next one. A 4,000-instance answer costs
# ~13 ms of SQLite CPU: unpaced, a storm recomputed it for nearly every call
# (the state moves with every write), about a whole core on a 2-core machine.
DETAILS_GAP = 0.04


def add_routes(app: web.Application, api: Api) -> None:
    r = SchedulerRoutes(api)
    job = "/jobs/{role}/{env}/{name}"
    app.add_routes(
        [
            web.post("/jobs", r.create_job),
            web.get("/jobs", r.list_jobs),
            web.post(job + "/kill", r.kill_job),
            web.post("/updates", r.start_update),
            web.get("/updates/{update_id}", r.update_details),
            web.post("/updates/{update_id}/abort", r.abort_update),
            web.get("/tasks", r.list_tasks),
            web.get("/tasks/{task_id}", r.get_task),
            web.post("/tasks/{task_id}/status", r.change_state),
            web.put("/quotas/{role}", r.save_quota),
        ]
    )


def _now_ms() -> int:
    return int(time.time() * 1000)


def _name(body: dict[str, Any], key: str) -> str:
    v = body.get(key)
    if not isinstance(v, str) or not scheduler.NAME.match(v):
        raise ApiError(
            "bad_request", f"{key} must be 1..64 of letters, digits, '_' or '.'; got {v!r}"
        )
    return v


def _count(body: dict[str, Any], key: str, low: int, high: int) -> int:
    v = body.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= high:
        raise ApiError("bad_request", f"{key} must be an integer in {low}..{high}; got {v!r}")
    return v


def _state(body: dict[str, Any], key: str) -> str:
    v = body.get(key)
    if v not in scheduler.STATES:
        raise ApiError(
            "bad_request",
            f"{key} must be a task state, one of {', '.join(scheduler.STATES)}; got {v!r}",
        )
    return str(v)


def _job_param(value: str | None) -> str:
    parts = (value or "").split("/")
    if len(parts) != 3 or not all(scheduler.NAME.match(p) for p in parts):
        raise ApiError("bad_request", f"job must be role/env/name; got {value!r}")
    return value or ""


_reader = threading.local()
READER_NICE = 10


def _yield_to_writer() -> None:
    """Lowers this reader thread's CPU priority, once: the writer thread and the event loop win the CPU.

    SQLite's MVCC (WAL) means readers never block the writer on locks, but on a
    2-core machine a read storm can still take the cores; a Linux thread's
    nice value is its own (it is a task), so only reader threads yield.
    """
    if getattr(_reader, "niced", False):
        return
    _reader.niced = True
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), READER_NICE)


def _tx(fn: Callable[[sqlite3.Connection], T]) -> Callable[[sqlite3.Connection], tuple[int, T]]:
    """Runs ``fn`` inside one read transaction: everything it reads is one state."""

    def run(conn: sqlite3.Connection) -> tuple[int, T]:
        _yield_to_writer()
        conn.execute("BEGIN")
        try:
            return applied_of(conn)[0], fn(conn)
        finally:
            conn.execute("COMMIT")

    return run


class SchedulerRoutes:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.store = api.store
        self.details = SingleFlight(DETAILS_GAP)
        # At most this many getJobUpdateDetails calls are served at once; the rest wait
        # here without using the CPU, which the writer path (same process) needs.
        self.details_slots = asyncio.Semaphore(DETAILS_AT_ONCE)

    async def _write(self, command: dict[str, Any], **extra: Any) -> web.Response:
        resp = await self.api._write(command)
        if not extra:
            return resp
        assert isinstance(resp.body, bytes)
        return web.json_response({**json.loads(resp.body), **extra})

    async def _barrier(self) -> int:
        """ReadIndex: the index a linearizable read must see, once this node has applied it."""
        self.store.check_serving()
        if bugs.STALE_READ in self.api.cfg.bugs:  # bugs.STALE_READ: served from local state as is
            return 0
        timeout = self.api.timeout
        try:
            index = await self.store.raft.read_index(timeout)
        except NotLeader as e:
            raise self.api._not_leader(e.leader) from None
        except TimeoutError:
            raise ApiError("timeout", "leadership could not be confirmed in time") from None
        if not await self.store.wait_applied(index, timeout):
            raise ApiError("timeout", f"index {index} was not applied in time")
        return index

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> tuple[int, T]:
        """A linearizable read: ReadIndex, wait until applied, then one read transaction."""
        await self._barrier()
        result: tuple[int, T] = await self.store.on_reader(self.store.sm.read, _tx(fn))
        return result

    # -- writes ---------------------------------------------------------------------
    async def create_job(self, request: web.Request) -> web.Response:
        body = await json_body(
            request,
            {"role", "env", "name", "instances", "task_config", "request_id"},
            {"role", "env", "name", "instances"},
            BODY_LIMIT,
            self.api.body_timeout,
        )
        role, env, name = _name(body, "role"), _name(body, "env"), _name(body, "name")
        job: dict[str, Any] = {
            "role": role,
            "env": env,
            "name": name,
            "instances": _count(body, "instances", 0, scheduler.MAX_INSTANCES),
            "task_config": body.get("task_config") or {},
        }
        if not isinstance(job["task_config"], dict):
            raise ApiError("bad_request", "task_config must be a JSON object")
        self.api._check_value("task_config", job["task_config"])
        rid = {"request_id": body["request_id"]} if "request_id" in body else {}
        return await self._write(
            {"op": "sched.CreateJob", "job": job, "ts": _now_ms(), **rid},
            job=scheduler.job_key(role, env, name),
        )

    async def kill_job(self, request: web.Request) -> web.Response:
        m = request.match_info
        job = _job_param(f"{m['role']}/{m['env']}/{m['name']}")
        return await self._write({"op": "sched.KillJob", "job": job, "ts": _now_ms()})

    async def start_update(self, request: web.Request) -> web.Response:
        body = await json_body(
            request,
            {"job", "instances", "batch_size", "update_id", "request_id"},
            {"job", "instances", "batch_size"},
            BODY_LIMIT,
            self.api.body_timeout,
        )
        job = _job_param(body.get("job"))
        n = _count(body, "instances", 1, scheduler.MAX_INSTANCES)
        batch = _count(body, "batch_size", 1, scheduler.MAX_INSTANCES)
        if batch > n:
            raise ApiError(
                "bad_request", f"batch_size {batch} is larger than instances {n}; use at most {n}"
            )
        # The leader names the update (Aurora: a UUID); the id is in the command, so apply stays deterministic.
        uid = body.get("update_id") or uuid.uuid4().hex
        if not isinstance(uid, str) or not scheduler.NAME.match(uid):
            raise ApiError(
                "bad_request",
                f"update_id must be 1..64 of letters, digits, '_' or '.'; got {uid!r}",
            )
        rid = {"request_id": body["request_id"]} if "request_id" in body else {}
        return await self._write(
            {
                "op": "sched.StartJobUpdate",
                "job": job,
                "update_id": uid,
                "instances": n,
                "batch_size": batch,
                "ts": _now_ms(),
                **rid,
            },
            update_id=uid,
        )

    async def abort_update(self, request: web.Request) -> web.Response:
        return await self._write(
            {
                "op": "sched.AbortJobUpdate",
                "update_id": request.match_info["update_id"],
                "ts": _now_ms(),
            }
        )

    async def change_state(self, request: web.Request) -> web.Response:
        body = await json_body(
            request, {"from", "to", "request_id"}, {"from", "to"}, BODY_LIMIT, self.api.body_timeout
        )
        frm, to = _state(body, "from"), _state(body, "to")
        if not scheduler.legal(frm, to):
            allowed = ", ".join(sorted(scheduler.TRANSITIONS[frm])) or "nothing (it is terminal)"
            raise ApiError(
                "bad_request",
                f"{frm} -> {to} is not a legal task transition; from {frm} a task "
                f"may go to {allowed}",
            )
        rid = {"request_id": body["request_id"]} if "request_id" in body else {}
        return await self._write(
            {
                "op": "sched.ChangeState",
                "task_id": request.match_info["task_id"],
                "from": frm,
                "to": to,
                "ts": _now_ms(),
                **rid,
            }
        )

    async def save_quota(self, request: web.Request) -> web.Response:
        role = request.match_info["role"]
        if not scheduler.NAME.match(role):
            raise ApiError(
                "bad_request", f"role must be 1..64 of letters, digits, '_' or '.'; got {role!r}"
            )
        body = await json_body(
            request,
            {"cpu", "ram_mb", "disk_mb"},
            {"cpu", "ram_mb", "disk_mb"},
            BODY_LIMIT,
            self.api.body_timeout,
        )
        cpu = body["cpu"]
        if not isinstance(cpu, int | float) or isinstance(cpu, bool) or cpu < 0:
            raise ApiError("bad_request", f"cpu must be a non-negative number; got {cpu!r}")
        quota = {
            "cpu": float(cpu),
            "ram_mb": _count(body, "ram_mb", 0, 1 << 40),
            "disk_mb": _count(body, "disk_mb", 0, 1 << 40),
        }
        return await self._write({"op": "sched.SaveQuota", "role": role, "quota": quota})

    # -- reads ----------------------------------------------------------------------
    async def list_jobs(self, request: web.Request) -> web.Response:
        index, jobs = await self._read(read_jobs)
        return web.json_response({"jobs": jobs, "index": index})

    async def list_tasks(self, request: web.Request) -> web.Response:
        job = _job_param(request.query.get("job"))
        index, tasks = await self._read(lambda c: read_tasks(c, job))
        if tasks is None:
            raise ApiError("not_found", f"job {job} does not exist")
        return web.json_response({"job": job, "tasks": tasks, "index": index})

    async def get_task(self, request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        return await self._read_json(
            lambda c: read_task(c, task_id),
            f"task {task_id} does not exist; list a job's tasks with GET /tasks?job=",
        )

    async def update_details(self, request: web.Request) -> web.Response:
        uid = request.match_info["update_id"]
        async with self.details_slots:
            return await self._details(uid)

    async def _details(self, uid: str) -> web.Response:
        at_least = await self._barrier()

        async def read() -> tuple[int, bytes | None]:
            index, body = await self.store.on_reader(
                self.store.sm.read, _tx(_encoded(lambda c: read_update_details(c, uid)))
            )
            return index, body

        body = await self.details.get(uid, at_least, read)
        if body is None:
            raise ApiError("not_found", f"update {uid} does not exist")
        return web.Response(body=body, content_type="application/json")

    async def _read_json(
        self, fn: Callable[[sqlite3.Connection], dict[str, Any] | str | None], missing: str
    ) -> web.Response:
        _index, body = await self._read(_encoded(fn))
        if body is None:
            raise ApiError("not_found", missing)
        return web.Response(body=body, content_type="application/json")


def _encoded(
    fn: Callable[[sqlite3.Connection], dict[str, Any] | str | None],
) -> Callable[[sqlite3.Connection], bytes | None]:
    """A read whose answer is also encoded on the reader thread: a big getJobUpdateDetails answer
    would otherwise hold the event loop (and with it Raft and every write) while it is encoded.
    ``fn`` returns an object, or an object's JSON text (built by SQLite), or None if missing."""

    def encoded(conn: sqlite3.Connection) -> bytes | None:
        found = fn(conn)
        if found is None:
            return None
        text = found if isinstance(found, str) else json.dumps(found, separators=(",", ":"))
        return f'{text[:-1]},"index":{applied_of(conn)[0]}}}'.encode()

    return encoded


class SingleFlight:
    """Concurrent reads of one key share one read transaction instead of each running their own.

    A reader storm on getJobUpdateDetails asks for the same answer many times
    a second; computing it once per applied state bounds the CPU the readers
    take from the writer on a small machine, whatever their number. It stays
    linearizable: a caller whose ReadIndex is ``r`` only takes an answer read
    at an applied index ``>= r`` — a state that existed after its read began
    (it was committed after ``r``) and no later than now.

    With ``min_gap`` a key's reads start at least that many seconds apart: a
    caller needing a newer answer waits for the next read, and every caller
    arriving during the pause shares it. The pause only delays a read, which
    still begins after each sharer's ReadIndex, so this stays linearizable.
    """

    KEEP = 64  # answers kept (one per update id being watched)

    def __init__(
        self, min_gap: float = 0.0, pause: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        self.min_gap = min_gap
        self._pause = pause
        self._last: dict[str, tuple[int, bytes]] = {}
        self._running: dict[str, asyncio.Future[None]] = {}
        self._started: dict[str, float] = {}

    async def get(
        self, key: str, at_least: int, read: Callable[[], Awaitable[tuple[int, bytes | None]]]
    ) -> bytes | None:
        while True:
            last = self._last.get(key)
            if last is not None and last[0] >= at_least:
                return last[1]
            running = self._running.get(key)
            if running is None:
                break
            await asyncio.shield(running)  # then look again: it may have read a recent enough state
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._running[key] = done
        try:
            wait = self._started.get(key, -self.min_gap) + self.min_gap - loop.time()
            if wait > 0:
                await self._pause(wait)
            self._started[key] = loop.time()
            if len(self._started) > self.KEEP:
                self._started.pop(next(iter(self._started)))
            index, body = await read()
            newest = self._last.get(key)
            if body is not None and (newest is None or newest[0] < index):
                self._last.pop(key, None)
                self._last[key] = (index, body)
                while len(self._last) > self.KEEP:
                    self._last.pop(next(iter(self._last)))
            return body
        finally:
            del self._running[key]
            done.set_result(None)


# -- queries (run inside one read transaction) -------------------------------------------
def read_jobs(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    counts: dict[str, dict[str, int]] = {}
    for job, status, n in conn.execute(
        "SELECT job, status, count(*) FROM sched_tasks GROUP BY job, status"
    ):
        counts.setdefault(job, {})[status] = n
    return [
        {
            "job": job,
            "role": role,
            "env": env,
            "name": name,
            "instances": n,
            "task_config": json.loads(cfg),
            "tasks": counts.get(job, {}),
        }
        for job, role, env, name, n, cfg in conn.execute("SELECT * FROM sched_jobs ORDER BY job")
    ]


def read_tasks(conn: sqlite3.Connection, job: str) -> list[dict[str, Any]] | None:
    if conn.execute("SELECT 1 FROM sched_jobs WHERE job = ?", (job,)).fetchone() is None:
        return None
    return [
        {"task_id": t, "instance": i, "status": s, "update_id": u}
        for t, i, s, u in conn.execute(
            "SELECT task_id, instance, status, update_id FROM sched_tasks WHERE job = ? ORDER BY instance, task_id",
            (job,),
        )
    ]


def read_task(conn: sqlite3.Connection, task_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT job, instance, status, update_id FROM sched_tasks WHERE task_id = ?", (task_id,)
    ).fetchone()
    if row is None:
        return None
    events = [
        {"status": s, "ts": ts, "index": i}
        for s, ts, i in conn.execute(
            "SELECT status, ts, log_index FROM sched_task_events WHERE task_id = ? ORDER BY seq",
            (task_id,),
        )
    ]
    return {
        "task_id": task_id,
        "job": row[0],
        "instance": row[1],
        "status": row[2],
        "update_id": row[3],
        "events": events,
    }


def read_update_details(conn: sqlite3.Connection, uid: str) -> str | None:
    """getJobUpdateDetails as JSON text: the update, its events, its instance events, its tasks' states.

    SQLite builds the JSON (json_group_array), in C and without Python's GIL:
    under a storm of these reads, Python-level row handling in reader threads
    would take the interpreter from the writer thread and the event loop, and
    writes would wait for reads after all. Rows are compact lists; tasks carry
    their event count and last event index so a reader can tell a consistent
    view from a torn one.
    """
    update = conn.execute(
        "SELECT json_object('update_id', update_id, 'job', job, 'instances', instances, 'batch_size', batch_size,"
        " 'status', status, 'events', (SELECT json_group_array(json_object('status', status, 'ts', ts,"
        " 'index', log_index)) FROM (SELECT status, ts, log_index FROM sched_update_events"
        " WHERE update_id = ?1 ORDER BY seq))) FROM sched_updates WHERE update_id = ?1",
        (uid,),
    ).fetchone()
    if update is None:
        return None
    instance_events = conn.execute(
        "SELECT json_group_array(json_array(instance, action, ts, log_index)) FROM (SELECT * FROM"
        " sched_instance_events WHERE update_id = ? ORDER BY seq)",
        (uid,),
    ).fetchone()[0]
    tasks = conn.execute(
        "SELECT json_group_array(json_array(task_id, instance, status, n, last)) FROM (SELECT t.task_id,"
        " t.instance, t.status, count(e.seq) AS n, max(e.log_index) AS last FROM sched_tasks t"
        " JOIN sched_task_events e ON e.task_id = t.task_id WHERE t.update_id = ?"
        " GROUP BY t.task_id ORDER BY t.instance)",
        (uid,),
    ).fetchone()[0]
    return f'{{"update":{update[0]},"instance_events":{instance_events},"tasks":{tasks}}}'
