"""What a fault window should cost the service, which decides how failover judges it.

Three classes, from what a quorum system can promise:

* ``leader``: the fault removes the leader (kill, pause, power cut or disk
  stall of the leader; a partition or cutting link fault that leaves it
  without a majority, or that lets nodes cut from it elect another). A new
  leader must serve within the bound, timed from the fault's start.
* ``majority``: the fault takes out a majority. Nothing can serve until it
  ends, by design of any quorum system, so the bound is timed from its heal.
* ``service``: a working majority keeps its leader (a follower killed or
  paused, a minority partition, slow links, clock skew). Service must not
  stop at all: the longest gap between acknowledged ops while it acts is
  held to the bound.

The class is decided from the fault's completion value (targets, leader,
grudge, toxic) and the cluster's nodes only, so a stored run is judged the
same way again.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from squall.checkers.stats import fault_value
from squall.faults import effect

FaultClass = Literal["leader", "majority", "service"]

# Toxics that cut a link rather than slow it: on the leader's links they are a
# partition of the leader (Toxiproxy's timeout with 0 holds data forever).
CUTTING_TOXICS = frozenset({"timeout", "reset_peer", "limit_data"})


@dataclass(frozen=True, kw_only=True)
class Classified:
    cls: FaultClass
    reason: str  # a person's phrase: "kill of the leader n1", "pause of 3 of 5 nodes"


def majority(n: int) -> int:
    return n // 2 + 1


def reachable(node: str, grudge: Mapping[str, Collection[str]], nodes: Sequence[str]) -> set[str]:
    """The nodes ``node`` can exchange messages with, itself included.

    Raft needs both directions (append entries out, acks back), so a node
    counts as reachable only if neither side holds a grudge against the other.
    """
    cut_from = set(grudge.get(node, ()))
    return {
        n for n in nodes if n == node or (n not in cut_from and node not in set(grudge.get(n, ())))
    }


def _by_partition(
    leader: str | None, grudge: Mapping[str, Collection[str]], nodes: Sequence[str]
) -> Classified:
    need = majority(len(nodes))
    if all(len(reachable(n, grudge, nodes)) < need for n in nodes):
        return Classified(cls="majority", reason="partition leaving no side a majority")
    if leader is None:
        return Classified(cls="leader", reason="partition while no leader was agreed")
    mine = reachable(leader, grudge, nodes)
    if len(mine) < need:
        return Classified(cls="leader", reason=f"partition cutting the leader {leader} off")
    # A node cut from the leader that still hears a majority can win an election
    # (majorities-ring, bridge): the leader may be legitimately replaced, which is
    # a failover, not a stall.
    rivals = [n for n in nodes if n not in mine and len(reachable(n, grudge, nodes)) >= need]
    if rivals:
        return Classified(
            cls="leader",
            reason=f"partition letting {', '.join(rivals)} elect past the leader {leader}",
        )
    return Classified(cls="service", reason=f"partition leaving the leader {leader} a majority")


def _by_targets(
    kind: str, leader: str | None, targets: set[str], nodes: Sequence[str]
) -> Classified:
    hit = targets & set(nodes) if nodes else targets
    if nodes and len(nodes) - len(hit) < majority(len(nodes)):
        return Classified(cls="majority", reason=f"{kind} of {len(hit)} of {len(nodes)} nodes")
    if leader is None:
        return Classified(cls="leader", reason=f"{kind} while no leader was agreed")
    if leader in targets:
        return Classified(cls="leader", reason=f"{kind} of the leader {leader}")
    return Classified(cls="service", reason=f"{kind} of follower {', '.join(sorted(hit))}")


def classify(window: Mapping[str, Any], nodes: Sequence[str]) -> Classified:
    """The class of one fault window (see the module docstring)."""
    value = fault_value(window)
    kind = window["fault"]
    leader = value.get("leader")
    targets = set(value.get("targets") or [])
    how = effect(kind)
    if how == "network" and value.get("grudge") and nodes:
        return _by_partition(leader, value["grudge"], nodes)
    toxic = value.get("toxic")
    toxic_type = toxic.get("type") if isinstance(toxic, Mapping) else toxic
    cuts = how == "degrades" and toxic_type in CUTTING_TOXICS
    if how in ("stops", "disk", "network") or cuts:
        return _by_targets(kind if not cuts else f"{kind} {toxic_type}", leader, targets, nodes)
    what = f"{kind} {toxic_type}" if toxic_type else kind
    return Classified(cls="service", reason=f"{what} (slows or skews; no failover needed)")
