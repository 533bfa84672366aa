"""Workloads: an op generator, how an op is sent through a client, and the checkers that apply.

The generic ones (``register``, ``set``) talk to op protocols
(``squall.protocols``), so they run on any system whose client implements
them; a system may offer its own (the Aurora store's ``scheduler``). Names
resolve through the system first, then the ``squall.workloads`` entry points.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from squall.protocols import System
from squall.workloads.base import Invocation, Workload

__all__ = ["Invocation", "Workload", "get_workload", "workload_names"]


def _system_workloads(system: System | None) -> Mapping[str, Any]:
    offered = getattr(system, "workloads", None)
    return dict(offered()) if callable(offered) else {}


def workload_names(system: System | None = None) -> list[str]:
    from squall import registry

    # Not the builtin ``set`` by name: importing squall.workloads.set binds that
    # name in this package's namespace to the submodule.
    return sorted({*registry.names("workload"), *_system_workloads(system)})


def get_workload(
    name: str,
    concurrency: int,
    options: Mapping[str, Any] | None = None,
    system: System | None = None,
) -> Workload:
    """The workload ``name`` for ``system``: the system's own first, then the registry's."""
    from squall import registry

    factory = _system_workloads(system).get(name)
    if factory is None:
        try:
            factory = registry.workload_factory(name)
        except registry.UnknownName:
            raise ValueError(
                f"workload {name!r} is unknown; known: {', '.join(workload_names(system))}"
            ) from None
    return factory(concurrency, dict(options or {}))  # type: ignore[no-any-return]
