"""Fault names -> factories, and which backend can run which fault.

``--nemesis kill,partiton`` must fail before anything starts, with the list
of names that exist; ``--backend local --nemesis partition`` likewise, with
what to use instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from squall.nemesis.base import Fault, NemesisError
from squall.nemesis.clock import Clock
from squall.nemesis.disk import DiskStall
from squall.nemesis.link import Link
from squall.nemesis.partition import Partition
from squall.nemesis.powercut import PowerCut
from squall.nemesis.process import Kill, Pause

FACTORIES: dict[str, Callable[..., Fault]] = {
    "kill": Kill,
    "pause": Pause,
    "partition": Partition,
    "link": Link,
    "disk-stall": DiskStall,
    "clock": Clock,
    "power-cut": PowerCut,
}
KNOWN = tuple(FACTORIES)

# What each backend can inject. The local backend's nodes are plain processes
# on 127.0.0.1: signals work and traffic can go through Toxiproxy, but there
# is no network namespace to drop packets in, no container to mount FUSE in,
# and the clock shim would have to wrap the process at start.
SUPPORT: dict[str, frozenset[str]] = {
    "docker": frozenset(KNOWN),
    # Partitions are emulated on local by blackholing the peer proxies.
    "local": frozenset({"kill", "pause", "link", "partition"}),
}
WHY_NOT = {
    "disk-stall": "it mounts a FUSE filesystem inside the node's container; use --backend docker",
    "clock": "it preloads a clock shim into the node's container; use --backend docker",
    "power-cut": "it mounts a FUSE filesystem inside the node's container; use --backend docker",
}


class UnknownNemesis(NemesisError):
    pass


def validate_names(names: Iterable[str]) -> list[str]:
    """The names, checked: a typo raises with the list of known ones."""
    out = []
    for raw in names:
        name = str(raw).strip()
        if not name:
            continue
        if name not in FACTORIES:
            raise UnknownNemesis(f'nemesis "{name}" is unknown; known: {", ".join(KNOWN)}')
        out.append(name)
    return out


def parse_names(text: str) -> list[str]:
    """``"kill,partition"`` -> ``["kill", "partition"]``; ``"none"`` or ``""`` -> ``[]``."""
    if text.strip() in ("", "none"):
        return []
    return validate_names(text.split(","))


def backend_of(cluster_cls: type | object) -> str:
    cls = cluster_cls if isinstance(cluster_cls, type) else type(cluster_cls)
    name = cls.__name__.lower()
    for backend in SUPPORT:
        if name.startswith(backend):
            return backend
    return name


def check_supported(names: Iterable[str], cluster_cls: type | object) -> None:
    """Raises NemesisError naming every fault this backend cannot run, and why."""
    names = validate_names(names)
    backend = backend_of(cluster_cls)
    supported = SUPPORT.get(backend)
    if supported is None:
        # An unknown backend: trust its own ``supports`` for what it declares.
        declared = set(getattr(cluster_cls, "supports", ()))
        supported = frozenset(n for n in names if n in declared)
    missing = [n for n in names if n not in supported]
    if missing:
        reasons = "; ".join(f"{n}: {WHY_NOT.get(n, 'not implemented by this backend')}"
                            for n in missing)
        raise NemesisError(f"the {backend} backend cannot run nemesis {', '.join(missing)} "
                           f"({reasons})")


def build(names: Iterable[str], backend: str = "docker",
          options: dict[str, dict[str, Any]] | None = None) -> dict[str, Fault]:
    """One fault instance per name, with per-fault constructor options."""
    faults: dict[str, Fault] = {}
    for name in dict.fromkeys(validate_names(names)):
        kwargs = dict((options or {}).get(name, {}))
        if name == "link":
            kwargs.setdefault("backend", backend)
        try:
            faults[name] = FACTORIES[name](**kwargs)
        except TypeError as exc:
            raise NemesisError(f"bad options for nemesis {name}: {exc}") from None
    if backend == "local" and "partition" in faults:
        # No network namespaces: peers talk through Toxiproxy and a partition
        # blackholes the proxies its grudge cuts. (The docker backend drops
        # proxied traffic with iptables itself, so it needs no such help.)
        faults.setdefault("link", FACTORIES["link"](backend=backend))
        faults["partition"].link = faults["link"]  # type: ignore[attr-defined]
    return faults
