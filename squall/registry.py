"""Names a user can give on the command line, and what they stand for.

Four registries, each a Python entry point group, so a user's own package
adds to them by declaring entry points, with no edit here:

* ``squall.systems``   name -> a zero-argument callable returning a ``System``
* ``squall.workloads`` name -> ``(concurrency, options) -> Workload``
* ``squall.models``    name -> a linearizability ``Model`` value
* ``squall.faults``    name -> a ``squall.faults.FaultKind`` value

Squall's own systems, workloads and models are registered the same way (in
its ``pyproject.toml``); only the built-in faults are also listed in
``squall.faults.BUILT_IN``, since the fault table is ground data.
Anywhere a name is accepted, ``package.module:attribute`` is accepted too.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from squall.faults import BUILT_IN, FaultKind

GROUPS = {
    "system": "squall.systems",
    "workload": "squall.workloads",
    "model": "squall.models",
    "fault": "squall.faults",
}


class UnknownName(ValueError):
    """A name no registry knows; the message lists the known ones."""


@functools.cache
def _entries(group: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=group)}


def load(spec: str) -> Any:
    """The object at ``package.module:attribute``."""
    module, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise UnknownName(
            f"{spec!r} cannot be loaded ({exc}); write package.module:attribute"
        ) from None
    return obj


def lookup(kind: str, name: str) -> Any:
    """The object registered as ``name`` in the ``kind`` registry, or at ``module:attr``."""
    if ":" in name:
        return load(name)
    entries = _entries(GROUPS[kind])
    if name not in entries:
        known = sorted(entries) + ([k.name for k in BUILT_IN] if kind == "fault" else [])
        raise UnknownName(f'{kind} "{name}" is unknown; known: {", ".join(sorted(set(known)))}')
    return entries[name].load()


def names(kind: str) -> list[str]:
    found = set(_entries(GROUPS[kind]))
    if kind == "fault":
        found |= {k.name for k in BUILT_IN}
    return sorted(found)


def system(name: str) -> Any:
    """A fresh ``System`` for the name (entry points hold a factory: a class or a function)."""
    factory = lookup("system", name)
    return factory() if callable(factory) else factory


def workload_factory(name: str) -> Callable[..., Any]:
    return lookup("workload", name)  # type: ignore[no-any-return]


def model(name: str) -> Any:
    return lookup("model", name)


@functools.cache
def faults() -> Mapping[str, FaultKind]:
    """Every fault kind: the built-in table, then users' entry points (which may not shadow it)."""
    out = {k.name: k for k in BUILT_IN}
    for name, ep in _entries(GROUPS["fault"]).items():
        if name not in out:
            out[name] = ep.load()
    return out


def fault(name: str) -> FaultKind:
    known = faults()
    if name not in known:
        raise UnknownName(f'nemesis "{name}" is unknown; known: {", ".join(known)}')
    return known[name]
