"""Every kind of fault, one row each: what it is called, what builds it, what it needs,
what a random schedule may draw for it, how it affects service, and its colour.

One table for this knowledge, on the ground floor so checkers and reports can
read it without importing the nemeses (a second copy drifted: power cuts once
had no plot colour). The factory is named by import path and loaded only when
a fault is built. A user's own fault joins through the ``squall.faults``
entry point group, whose entries are ``FaultKind`` values.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

# What a fault does to service while it acts, which decides how failover judges it:
#   stops     its targets cannot serve (kill, pause, power cut)
#   disk      its targets' disks stall or fail (they may step down, or not)
#   network   messages between nodes are lost, by its grudge or proxies
#   degrades  slower or stranger, but a working majority must keep serving
Effect = Literal["stops", "disk", "network", "degrades"]

TARGETS = ("leader", "random", "minority", "majority", "all")


@dataclass(frozen=True, kw_only=True)
class FaultKind:
    name: str
    factory: str  # "package.module:Class", built with the fault's options
    # Backend capabilities it needs (a backend declares what it supports);
    # any one of ``alternatives`` may stand in for all of ``requires``.
    requires: frozenset[str] = frozenset()
    alternatives: tuple[frozenset[str], ...] = ()
    why: str = ""  # why it needs them: said when a backend lacks them
    menu: tuple[Mapping[str, Any], ...] = ({},)  # what Schedule.random may pick, beyond defaults
    effect: Effect = "degrades"
    colour: str = "#999999"

    def load(self) -> Callable[..., Any]:
        module, _, attr = self.factory.partition(":")
        return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


def _targets(*names: str) -> tuple[dict[str, Any], ...]:
    return tuple({"target": t} for t in names)


BUILT_IN: tuple[FaultKind, ...] = (
    FaultKind(
        name="kill",
        factory="squall.nemesis.process:Kill",
        requires=frozenset({"kill"}),
        menu=_targets("leader", "random", "minority", "majority"),
        effect="stops",
        colour="#d62728",
    ),
    FaultKind(
        name="pause",
        factory="squall.nemesis.process:Pause",
        requires=frozenset({"pause"}),
        menu=_targets("leader", "random", "minority", "majority"),
        effect="stops",
        colour="#9467bd",
    ),
    FaultKind(
        name="partition",
        factory="squall.nemesis.partition:Partition",
        requires=frozenset({"partition"}),
        alternatives=(frozenset({"proxy-peers"}),),
        why="it drops packets in the nodes' network namespaces, or blackholes the "
        "proxies peers talk through",
        menu=tuple({"grudge": g} for g in ("halves", "one", "leader", "majorities-ring", "bridge")),
        effect="network",
        colour="#8c564b",
    ),
    FaultKind(
        name="link",
        factory="squall.nemesis.link:Link",
        requires=frozenset({"proxy-peers"}),
        why="it routes every peer link through a Toxiproxy proxy",
        menu=(
            {"toxic": "latency", "target": "random"},
            {"toxic": "latency", "target": "leader"},
            {"toxic": "bandwidth", "target": "random"},
            {"toxic": "timeout", "target": "random"},
            {"toxic": "reset_peer", "target": "random"},
        ),
        effect="degrades",
        colour="#17becf",
    ),
    FaultKind(
        name="disk-stall",
        factory="squall.nemesis.disk:DiskStall",
        requires=frozenset({"fuse"}),
        why="it mounts a FUSE filesystem over the node's data directory; use --backend docker",
        menu=(
            {"snapshot": "trigger", "target": "leader"},
            {"snapshot": False, "target": "random"},
            {"snapshot": False, "target": "random", "mode": "eio"},
        ),
        effect="disk",
        colour="#bcbd22",
    ),
    FaultKind(
        name="clock",
        factory="squall.nemesis.clock:Clock",
        requires=frozenset({"preload"}),
        why="it preloads a clock shim into the node process; use --backend docker",
        menu=(
            {"target": "random", "mode": "bump"},
            {"target": "random", "mode": "strobe"},
            {"target": "leader", "mode": "strobe"},
        ),
        effect="degrades",
        colour="#7f7f7f",
    ),
    # all at once is the case that matters most: no replica keeps an unsynced write
    FaultKind(
        name="power-cut",
        factory="squall.nemesis.powercut:PowerCut",
        requires=frozenset({"fuse", "kill"}),
        why="it mounts a FUSE filesystem over the node's data directory; use --backend docker",
        menu=_targets("leader", "random", "majority", "all"),
        effect="stops",
        colour="#e377c2",
    ),
    # the point is drawn from the system's own list (System.failpoints) with the run's RNG
    FaultKind(
        name="failpoint",
        factory="squall.nemesis.failpoint:Failpoint",
        requires=frozenset({"kill"}),
        why="it restarts the nodes a failpoint crashed",
        menu=(
            {"point": "random", "target": "random"},
            {"point": "random", "target": "leader"},
        ),
        effect="stops",
        colour="#ff7f0e",
    ),
)


def colour(kind: str) -> str:
    """The plot colour of a fault kind (grey for one nobody registered)."""
    from squall.registry import faults

    known = faults()
    return known[kind].colour if kind in known else "#999999"


def effect(kind: str) -> Effect | None:
    from squall.registry import faults

    known = faults()
    return known[kind].effect if kind in known else None
