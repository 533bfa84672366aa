"""A set of unique elements: every add is a distinct integer; a final read
returns everything. Lost (acknowledged, missing), unexpected (never tried),
duplicated and recovered (indeterminate but present) elements are what the
set checker reports.

The store has no set type: element ``e`` is the key ``s-<e>`` and the final
read is one linearizable prefix read (``GET /kv?prefix=s-``) on the leader.
"""

from __future__ import annotations

import random
from typing import Any

from squall.checkers.base import Checker
from squall.systems.aurora.client import Outcome, StoreClient
from squall.workloads.base import Invocation, Workload

PREFIX = "s-"


class SetWorkload(Workload):
    name = "set"
    write_fs = ("add",)
    read_fs = ("read",)

    def next_op(self, worker: int, n: int, rng: random.Random) -> Invocation:
        # Distinct across workers without coordination: worker w owns w, w+C, w+2C…
        return Invocation("add", n * self.concurrency + worker)

    def invoke(self, client: StoreClient, inv: Invocation) -> tuple[Outcome, Any]:
        if inv.f == "add":
            e = int(inv.value)
            return client.call("PUT", f"/kv/{PREFIX}{e}", {"value": e}), e
        if inv.f == "read":
            out = client.call("GET", f"/kv?prefix={PREFIX}")
            if out.type != "ok" or not isinstance(out.body, dict):
                return out, None
            items = out.body.get("items", {})
            return out, sorted(int(v) for v in items.values())
        raise ValueError(f"set workload cannot send f={inv.f!r}")

    def final_ops(self) -> list[Invocation]:
        return [Invocation("read", None)]

    def checkers(self, time_limit: float) -> dict[str, Checker]:
        from squall.checkers.sets import check_set

        return {"set": check_set}
