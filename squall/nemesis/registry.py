"""Fault names -> fault values, and whether a backend and a system can run them.

``--nemesis kill,partiton`` must fail before anything starts, with the list
of names that exist; ``--backend local --nemesis disk-stall`` likewise, with
what the fault needs that the backend lacks; a fault the system declares it
cannot take (``System.unsupported``) likewise, with the system's reason.
Capability is decided by what the backend and the system declare
(``Cluster.supports``, ``squall.faults.FaultKind.requires``), never by a
class's name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from squall import registry
from squall.cluster.base import Cluster
from squall.faults import FaultKind
from squall.nemesis.base import Fault, NemesisError
from squall.protocols import System


class UnknownNemesis(NemesisError):
    pass


def validate_names(names: Iterable[str]) -> list[str]:
    """The names, checked: a typo raises with the list of known ones."""
    known = registry.faults()
    out = []
    for raw in names:
        name = str(raw).strip()
        if not name:
            continue
        if name not in known:
            raise UnknownNemesis(f'nemesis "{name}" is unknown; known: {", ".join(known)}')
        out.append(name)
    return out


def parse_names(text: str) -> list[str]:
    """``"kill,partition"`` -> ``["kill", "partition"]``; ``"none"`` or ``""`` -> ``[]``."""
    if text.strip() in ("", "none"):
        return []
    return validate_names(text.split(","))


def runnable(kind: FaultKind, supports: frozenset[str]) -> bool:
    """Whether a backend with ``supports`` can inject ``kind`` (directly or by an alternative)."""
    return kind.requires <= supports or any(alt <= supports for alt in kind.alternatives)


def refusals(
    names: Iterable[str], supports: frozenset[str], backend: str, system: System | None = None
) -> list[str]:
    """One sentence per fault this backend or system cannot run, saying why ([] if all can)."""
    out = []
    for name in validate_names(names):
        kind = registry.fault(name)
        if not runnable(kind, supports):
            missing = ", ".join(sorted(kind.requires - supports))
            out.append(
                f"the {backend} backend cannot run nemesis {name}: it needs {missing}"
                + (f" ({kind.why})" if kind.why else "")
            )
        if system is not None and name in system.unsupported:
            out.append(
                f"system {system.name} cannot take nemesis {name}: {system.unsupported[name]}"
            )
    return out


def check_supported(names: Iterable[str], cluster: Cluster) -> None:
    """Raises NemesisError naming every fault this cluster's backend or system cannot run, and why."""
    said = refusals(names, cluster.supports, cluster.kind, cluster.system)
    if said:
        raise NemesisError("; ".join(said))


def build(
    names: Iterable[str],
    supports: frozenset[str] = frozenset(),
    options: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Fault]:
    """One fault instance per name, with per-fault constructor options.

    A partition on a backend that cannot drop packets but can route peers
    through proxies is made by blackholing the proxies: the link fault is
    built too (for its proxies) and handed to the partition.
    """
    faults: dict[str, Fault] = {}
    for name in dict.fromkeys(validate_names(names)):
        kwargs = dict((options or {}).get(name, {}))
        try:
            faults[name] = registry.fault(name).load()(**kwargs)
        except TypeError as exc:
            raise NemesisError(f"bad options for nemesis {name}: {exc}") from None
    if "partition" in faults and "partition" not in supports and "proxy-peers" in supports:
        faults.setdefault("link", registry.fault("link").load()())
        faults["partition"].link = faults["link"]  # type: ignore[attr-defined]
    return faults


def options_of(name: str) -> frozenset[str]:
    """The option names a schedule event for fault ``name`` may carry."""
    return frozenset(getattr(registry.fault(name).load(), "options", ()))
