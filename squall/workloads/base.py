"""What a workload is: a client, a generator and the checkers that apply.

The runner gives every worker thread its own ``random.Random`` seeded from
the run seed and the worker number, and asks the workload for that worker's
next op. Ops depend only on that generator (never on outcomes or timing), so
two runs with the same seed issue the same op sequence per worker.
"""

from __future__ import annotations

import abc
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from squall.checkers.base import Checker
from squall.protocols import Result


@dataclass(frozen=True, slots=True)
class Invocation:
    f: str
    value: Any


class Workload(abc.ABC):
    """A bundle: op generator per worker, how an op is sent, what checks it."""

    name: str = "?"
    write_fs: tuple[str, ...] = ()
    read_fs: tuple[str, ...] = ()
    # The op protocol its client must implement (squall.protocols): checked
    # before the run starts, so a system without it is refused up front.
    needs: type | None = None

    def __init__(self, concurrency: int, options: Mapping[str, Any] | None = None) -> None:
        self.concurrency = concurrency
        self.options = dict(options or {})

    def setup(self, client: Any) -> None:  # noqa: B027 - optional hook
        """Runs once before load starts (create jobs, etc.)."""

    @abc.abstractmethod
    def next_op(self, worker: int, n: int, rng: random.Random) -> Invocation | None:
        """The ``n``-th op of ``worker``; None if this worker has nothing to do now."""

    @abc.abstractmethod
    def invoke(self, client: Any, inv: Invocation) -> Result:
        """Sends one op through the client; its result's ``value`` is what the completion records."""

    def final_ops(self) -> list[Invocation]:
        """Ops run once after the faults healed (final reads)."""
        return []

    @abc.abstractmethod
    def checkers(self, time_limit: float) -> dict[str, Checker]: ...

    def stagger(self, rng: random.Random, rate: float) -> float:
        """Seconds a worker waits before its next op: uniform in [0, 2·dt] (Jepsen's stagger)."""
        if rate <= 0:
            return 0.0
        dt = self.concurrency / rate
        return rng.uniform(0, 2 * dt)
