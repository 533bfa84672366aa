"""Independent CAS registers: read / write / cas on a few keys at a time.

Jepsen's ``independent`` idea: one register checked alone gets exponentially
expensive as concurrency and history grow, so workers are split into groups
of ``threads_per_key``; each group hammers one key for ``ops_per_key`` ops per
worker, then moves on to a fresh key. Every key's history is small and the
linearizability checker partitions by key, so checks stay fast however long
the run is.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from squall.checkers.base import Checker
from squall.protocols import RegisterClient, Result
from squall.workloads.base import Invocation, Workload


class RegisterWorkload(Workload):
    name = "register"
    write_fs = ("write", "cas")
    read_fs = ("read",)
    needs = RegisterClient

    def __init__(self, concurrency: int, options: dict[str, Any] | None = None) -> None:
        super().__init__(concurrency, options)
        self.threads_per_key = int(self.options.get("threads_per_key", min(concurrency, 5)))
        self.ops_per_key = int(self.options.get("ops_per_key", 60))
        self.values = int(self.options.get("values", 5))

    def key_for(self, worker: int, n: int) -> str:
        group = worker // self.threads_per_key
        return f"r{group}-{n // self.ops_per_key}"

    def next_op(self, worker: int, n: int, rng: random.Random) -> Invocation:
        key = self.key_for(worker, n)
        roll = rng.random()
        if roll < 0.4:
            return Invocation("read", [key, None])
        if roll < 0.7:
            return Invocation("write", [key, rng.randrange(self.values)])
        return Invocation("cas", [key, [rng.randrange(self.values), rng.randrange(self.values)]])

    def invoke(self, client: RegisterClient, inv: Invocation) -> Result:
        key, arg = inv.value
        if inv.f == "read":
            r = client.read(key)
            return replace(r, value=[key, r.value])
        if inv.f == "write":
            r = client.write(key, arg)
        elif inv.f == "cas":
            old, new = arg
            r = client.cas(key, old, new)
        else:
            raise ValueError(f"register workload cannot send f={inv.f!r}")
        return replace(r, value=inv.value)

    def checkers(self, time_limit: float) -> dict[str, Checker]:
        from squall.checkers.linearizable import linearizable_checker

        return {"linearizable": linearizable_checker("cas-register", time_limit=time_limit)}
