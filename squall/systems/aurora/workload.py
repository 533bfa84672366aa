"""The seed's scenario: a big job update driven task by task while readers storm getJobUpdateDetails.

Setup creates a job and starts an update of ``instances`` (default 4,000)
with ``batch_size`` (default 1,000). Workers then split in two:

* **drivers** move the update's tasks PENDING → ASSIGNED → STARTING → RUNNING
  with compare-and-set status updates (``f: "transition"``, value
  ``[task_id, {"from", "to"}]``), now and then reading a task back
  (``f: "read"``, ``[task_id, status]``). Drivers work in groups of
  ``contenders`` that race the very same transitions, so every step has one
  winner and the rest see ``precondition_failed``;
* **readers** (``readers``, default 32) call getJobUpdateDetails for the
  update in a loop (``f: "details"``: the update id on invoke, a small
  summary on ok — counts per state, never the blob).

Checked for: linearizability of each task's state (model ``task-state``),
write starvation under the read storm, and details that are never torn (each
summary is one state: the tables agree with each other) and never go back in
time.
"""

from __future__ import annotations

import bisect
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from squall.checkers.base import CheckContext, Checker
from squall.history import INVOKE, OK, Op, pair_ops
from squall.protocols import Result
from squall.systems.aurora.client import StoreClient
from squall.workloads.base import Invocation, Workload

JOB = {"role": "squall", "env": "storm", "name": "update"}
JOB_KEY = "squall/storm/update"
STEPS = (("PENDING", "ASSIGNED"), ("ASSIGNED", "STARTING"), ("STARTING", "RUNNING"))
# How many events a task in a state has, when it came the straight way (PENDING first).
CHAIN = {"PENDING": 1, "ASSIGNED": 2, "STARTING": 3, "RUNNING": 4}
TERMINAL = ("FINISHED", "FAILED", "KILLED", "LOST")


def summarize(details: Mapping[str, Any]) -> dict[str, Any]:
    """A getJobUpdateDetails answer reduced to a few numbers that still show a torn view."""
    u = details["update"]
    counts = Counter(t[2] for t in details["tasks"])
    actions = Counter(e[1] for e in details["instance_events"])
    bad = sum(
        1
        for _tid, _i, status, n, _last in details["tasks"]
        if (n != CHAIN[status] if status in CHAIN else not 2 <= n <= 5)
    )
    return {
        "index": details.get("index"),
        "status": u["status"],
        "instances": u["instances"],
        "batch_size": u["batch_size"],
        "counts": dict(sorted(counts.items())),
        "events": sum(t[3] for t in details["tasks"]),
        "bad_tasks": bad,
        "updating": actions["INSTANCE_UPDATING"],
        "updated": actions["INSTANCE_UPDATED"],
        "failed": actions["INSTANCE_UPDATE_FAILED"],
    }


def torn_reasons(s: Mapping[str, Any]) -> list[str]:
    """Why a summary cannot be one state of the store ([] when it can)."""
    why = []
    n, batch, counts = s["instances"], s["batch_size"], s["counts"]
    if sum(counts.values()) != n:
        why.append(f"{sum(counts.values())} tasks listed for an update of {n} instances")
    if s["bad_tasks"]:
        why.append(f"{s['bad_tasks']} tasks whose event count does not match their status")
    if s["status"] in ("ROLLING_FORWARD", "ROLLED_FORWARD") and not s["failed"]:
        running = counts.get("RUNNING", 0) + sum(counts.get(t, 0) for t in TERMINAL)
        if s["updated"] != counts.get("RUNNING", 0) and s["updated"] != running:
            why.append(
                f"{s['updated']} INSTANCE_UPDATED events but {counts.get('RUNNING', 0)} tasks RUNNING"
            )
        if (s["status"] == "ROLLED_FORWARD") != (s["updated"] == n):
            why.append(f"update {s['status']} with {s['updated']} of {n} instances updated")
        if s["updating"] != min(n, batch * (s["updated"] // batch + 1)):
            why.append(
                f"{s['updating']} instances started updating with {s['updated']} updated in "
                f"batches of {batch}"
            )
    return why


def check_details(ctx: CheckContext) -> dict[str, Any]:
    """Every details summary is one consistent state, and later reads never show less progress."""
    pairs = pair_ops([o for o in ctx.history if not o.is_nemesis and o.f == "details"])
    reads = [
        (p.invoke, p.complete)
        for p in pairs
        if p.complete is not None and p.complete.type == OK and isinstance(p.complete.value, dict)
    ]
    torn: list[dict[str, Any]] = [
        {"op": comp.index, "why": why} for _inv, comp in reads if (why := torn_reasons(comp.value))
    ]
    res: dict[str, Any] = {
        "valid": not torn,
        "details_ok": len(reads),
        "torn_count": len(torn),
        "torn": torn[:10],
    }
    backwards = _went_back(reads)
    res["went_back"] = backwards[:10]
    res["valid"] = not torn and not backwards
    if torn:
        res["why"] = (
            f"a getJobUpdateDetails answer mixed states: op {torn[0]['op']}: {'; '.join(torn[0]['why'])}"
        )
    elif backwards:
        b = backwards[0]
        res["why"] = (
            f"details op {b['op']} saw {b['events']} task events after op {b['earlier_op']} had "
            f"already seen {b['earlier_events']}: a stale read"
        )
    elif not reads:
        res["valid"] = "unknown"
        res["why"] = "no getJobUpdateDetails call succeeded"
    return res


def _went_back(reads: list[tuple[Op, Op]]) -> list[dict[str, Any]]:
    """Reads that saw fewer task events than a read completed before they began (events only grow)."""
    by_end = sorted(reads, key=lambda p: p[1].time)
    ends = [c.time for _i, c in by_end]
    best: list[tuple[int, int]] = []  # prefix maximum of (events, op index) in completion order
    for _inv, comp in by_end:
        cur = (comp.value["events"], comp.index)
        best.append(max(best[-1], cur) if best else cur)
    out = []
    for inv, comp in reads:
        k = bisect.bisect_left(ends, inv.time)  # reads completed strictly before this one began
        if k and best[k - 1][0] > comp.value["events"]:
            out.append(
                {
                    "op": comp.index,
                    "events": comp.value["events"],
                    "earlier_op": best[k - 1][1],
                    "earlier_events": best[k - 1][0],
                }
            )
    return out


def task_linearizability(time_limit: float) -> Checker:
    """task-state linearizability over transitions and reads, each task starting PENDING.

    Setup created every task PENDING before any op was invoked, so each task's
    sub-history is preceded by a completed ``create`` of PENDING.
    """
    from squall.checkers.linearizable import linearizable_checker

    inner = linearizable_checker("task-state", time_limit=time_limit, keyed=True)

    def check(ctx: CheckContext) -> dict[str, Any]:
        ops = [o for o in ctx.history if not o.is_nemesis and o.f in ("transition", "read")]
        tasks = sorted({o.value[0] for o in ops if o.type == INVOKE})
        created = [
            Op(process="setup", type=t, f="create", value=[task, "PENDING"], time=0)
            for task in tasks
            for t in (INVOKE, OK)
        ]
        return inner(
            CheckContext(history=created + ops, test=ctx.test, run_dir=ctx.run_dir, nodes=ctx.nodes)
        )

    return check


class SchedulerWorkload(Workload):
    name = "scheduler"
    write_fs = ("transition",)
    read_fs = ("read", "details")
    needs = StoreClient  # the store's own API: this workload is the store's, not generic

    def __init__(self, concurrency: int, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(concurrency, options)
        o = self.options
        self.instances = int(o.get("instances", 4000))
        self.batch_size = int(o.get("batch_size", 1000))
        self.readers = max(0, min(int(o.get("readers", 32)), concurrency - 1))
        self.drivers = concurrency - self.readers
        self.contenders = max(1, min(int(o.get("contenders", 2)), self.drivers))
        self.read_p = float(o.get("read_p", 0.2))
        self.update_id = str(o.get("update_id", f"storm{self.instances}x{self.batch_size}"))
        if not 1 <= self.batch_size <= self.instances:
            raise ValueError(
                f"scheduler workload: batch_size {self.batch_size} must be in 1..instances "
                f"({self.instances}); set workload option batch_size lower"
            )
        self.groups = math.ceil(self.drivers / self.contenders)
        self.task_ids: list[str] = []
        self._cursor: dict[int, int] = {}
        self._lock = threading.Lock()

    # -- setup -----------------------------------------------------------------------
    def setup(self, client: StoreClient) -> None:
        _retry(
            client, "POST", "/jobs", {**JOB, "instances": 0, "request_id": f"{self.update_id}-job"}
        )
        _retry(
            client,
            "POST",
            "/updates",
            {
                "job": JOB_KEY,
                "instances": self.instances,
                "batch_size": self.batch_size,
                "update_id": self.update_id,
                "request_id": f"{self.update_id}-start",
            },
        )
        body = _retry(client, "GET", f"/tasks?job={JOB_KEY}", None)
        ours = sorted(
            (t["instance"], t["task_id"]) for t in body["tasks"] if t["update_id"] == self.update_id
        )
        self.task_ids = [tid for _i, tid in ours]

    # -- ops -------------------------------------------------------------------------
    def next_op(self, worker: int, n: int, rng: random.Random) -> Invocation | None:
        if worker >= self.drivers:
            return Invocation("details", self.update_id)
        if not self.task_ids:
            return None
        group = worker // self.contenders
        mine = self.task_ids[group :: self.groups]
        with self._lock:
            pos = self._cursor.get(worker, 0)
            if pos < 3 * len(mine) and rng.random() >= self.read_p:
                self._cursor[worker] = pos + 1
                frm, to = STEPS[pos % 3]
                return Invocation("transition", [mine[pos // 3], {"from": frm, "to": to}])
        task = mine[min(pos // 3, len(mine) - 1)] if pos < 3 * len(mine) else rng.choice(mine)
        return Invocation("read", [task, None])

    def invoke(self, client: StoreClient, inv: Invocation) -> Result:
        if inv.f == "transition":
            task, arg = inv.value
            out = client.call(
                "POST", f"/tasks/{task}/status", {"from": arg["from"], "to": arg["to"]}
            )
            return Result(type=out.type, value=inv.value, error=out.error, node=out.node)
        if inv.f == "read":
            out = client.call("GET", f"/tasks/{inv.value[0]}")
            status = (
                out.body.get("status") if out.type == "ok" and isinstance(out.body, dict) else None
            )
            return Result(
                type=out.type, value=[inv.value[0], status], error=out.error, node=out.node
            )
        if inv.f == "details":
            out = client.call("GET", f"/updates/{inv.value}")
            if out.type != "ok" or not isinstance(out.body, dict):
                return Result(type=out.type, value=inv.value, error=out.error, node=out.node)
            return Result(type="ok", value=summarize(out.body), error=out.error, node=out.node)
        raise ValueError(f"scheduler workload cannot send f={inv.f!r}")

    def checkers(self, time_limit: float) -> dict[str, Checker]:
        from squall.checkers.starvation import check_starvation

        return {
            "linearizable": task_linearizability(time_limit),
            "starvation": check_starvation,
            "details": check_details,
        }


def _retry(client: StoreClient, method: str, path: str, body: Any, timeout: float = 30.0) -> Any:
    """Setup calls, retried until they succeed (request ids make a retried write apply once)."""
    deadline = time.monotonic() + timeout
    while True:
        out = client.call(method, path, body)
        if out.type == "ok":
            return out.body
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"scheduler workload setup: {method} {path} kept failing ({out.error}: {out.body})"
            )
        time.sleep(0.1)
