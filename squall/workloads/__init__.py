"""Workloads: a client, a generator and the checkers that apply, per kind of load."""

from __future__ import annotations

from typing import Any

from squall.workloads.base import Invocation, Workload

__all__ = ["Invocation", "Workload", "get_workload", "WORKLOAD_NAMES"]

WORKLOAD_NAMES = ("register", "set", "scheduler")


def get_workload(name: str, concurrency: int, options: dict[str, Any] | None = None) -> Workload:
    if name == "register":
        from squall.workloads.register import RegisterWorkload

        return RegisterWorkload(concurrency, options)
    if name == "set":
        from squall.workloads.set import SetWorkload

        return SetWorkload(concurrency, options)
    if name == "scheduler":
        from squall.systems.aurora.workload import SchedulerWorkload

        return SchedulerWorkload(concurrency, options)
    raise ValueError(f"workload {name!r} is unknown; known: {', '.join(WORKLOAD_NAMES)}")
