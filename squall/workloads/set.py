"""A set of unique elements: every add is a distinct integer; a final read
returns everything. Lost (acknowledged, missing), unexpected (never tried),
duplicated and recovered (indeterminate but present) elements are what the
set checker reports.

How a system stores the set is its client's business (``SetClient``): the
Aurora store keeps element ``e`` as the key ``s-<e>`` and reads them all with
one linearizable prefix read.
"""

from __future__ import annotations

import random

from squall.checkers.base import Checker
from squall.protocols import Result, SetClient
from squall.workloads.base import Invocation, Workload


class SetWorkload(Workload):
    name = "set"
    write_fs = ("add",)
    read_fs = ("read",)
    needs = SetClient

    def next_op(self, worker: int, n: int, rng: random.Random) -> Invocation:
        # Distinct across workers without coordination: worker w owns w, w+C, w+2C…
        return Invocation("add", n * self.concurrency + worker)

    def invoke(self, client: SetClient, inv: Invocation) -> Result:
        if inv.f == "add":
            return client.add(int(inv.value))
        if inv.f == "read":
            return client.read_all()
        raise ValueError(f"set workload cannot send f={inv.f!r}")

    def final_ops(self) -> list[Invocation]:
        return [Invocation("read", None)]

    def checkers(self, time_limit: float) -> dict[str, Checker]:
        from squall.checkers.sets import check_set

        return {"set": check_set}
