"""Restore fidelity: every copy of the state agrees at every index it was seen.

The state machine is deterministic, so two replicas (or one replica before
and after a restart) that applied the same log prefix must hold the same
state, hence the same digest. That gives one rule, applied to every digest
the run collected:

    any two digests recorded at the same applied index must be equal.

The digests come from three places per node (``ctx.nodes``): the final
``digest`` after the heal, the ``digest_history`` the node persisted (apply,
snapshot and restore events, surviving restarts), and the offline
``restore`` round trip (copy the data dir, restore snapshot + log tail in a
fresh process). A restore event, or the round trip, at an index no other
source recorded cannot be compared; it is counted as unverified, not passed.

A mismatch names both sources (node and event), the index and both digests.

Nodes record apply digests only every ``digest_every`` entries while a
restore lands wherever the snapshot plus log tail ends, so a restore is often
unverified directly; a wrong restore still shows at the restored node's next
recorded apply digest, which the other replicas recorded too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from squall.checkers.base import UNKNOWN, CheckContext

SHOW = 10


@dataclass(frozen=True, slots=True)
class Seen:
    """One digest as recorded by one source."""

    node: str
    event: str  # final | apply | snapshot | restore | round-trip
    index: int
    digest: str

    def name(self) -> str:
        return f"{self.node} ({self.event})"


def _seen(nodes: Mapping[str, Mapping[str, Any]]) -> Iterator[Seen]:
    for node, info in sorted(nodes.items()):
        final = info.get("digest")
        if final and final.get("digest") is not None:
            yield Seen(node, "final", int(final["index"]), str(final["digest"]))
        for entry in info.get("digest_history") or []:
            yield Seen(
                node, str(entry.get("event", "apply")), int(entry["index"]), str(entry["digest"])
            )
        rt = info.get("restore")
        if rt and rt.get("digest") is not None:
            yield Seen(node, "round-trip", int(rt["index"]), str(rt["digest"]))


def _mismatches(by_index: dict[int, list[Seen]]) -> list[dict[str, Any]]:
    """One mismatch per index: the first source against the first that disagrees."""
    out = []
    for index in sorted(by_index):
        seen = by_index[index]
        ref = seen[0]
        for other in seen[1:]:
            if other.digest != ref.digest:
                out.append(
                    {
                        "index": index,
                        "a": {"node": ref.node, "event": ref.event, "digest": ref.digest},
                        "b": {"node": other.node, "event": other.event, "digest": other.digest},
                        "text": f"at index {index} {ref.name()} had {ref.digest[:16]} but "
                        f"{other.name()} had {other.digest[:16]}",
                    }
                )
                break
    return out


def _unverified(by_index: dict[int, list[Seen]]) -> list[dict[str, Any]]:
    """Restores and round trips with nothing else recorded at their index."""
    out = []
    for index, seen in sorted(by_index.items()):
        for s in seen:
            if s.event in ("restore", "round-trip") and not any(
                o.node != s.node or o.event != s.event for o in seen
            ):
                out.append({"node": s.node, "event": s.event, "index": index})
    return out


def check_fidelity(ctx: CheckContext) -> dict[str, Any]:
    if not ctx.nodes:
        return {"valid": UNKNOWN, "why": "no node digests were collected after the run"}
    by_index: dict[int, list[Seen]] = {}
    for s in _seen(ctx.nodes):
        by_index.setdefault(s.index, []).append(s)
    mismatches = _mismatches(by_index)
    finals = {n: (i.get("digest") or {}).get("index") for n, i in ctx.nodes.items()}
    restarted = sorted(n for n, i in ctx.nodes.items() if i.get("restarts"))
    compared = sum(1 for seen in by_index.values() if len(seen) > 1)
    unverified = _unverified(by_index)
    # A restore (a restart's, or a cold standby's on winning) compared with a digest another
    # node recorded at its index: the old leader's snapshot, or its apply digest there.
    restores = [s for seen in by_index.values() for s in seen if s.event == "restore"]
    restores_compared = sum(1 for s in restores if any(o.node != s.node for o in by_index[s.index]))
    # The collector records {"error": ...} when the offline restore itself failed: the
    # data could not be restored at all, which no digest comparison can pass.
    rt_errors = {
        n: str(i["restore"]["error"])
        for n, i in ctx.nodes.items()
        if isinstance(i.get("restore"), Mapping) and i["restore"].get("error")
    }
    res: dict[str, Any] = {
        "valid": not mismatches,
        "indexes_compared": compared,
        "digests_seen": sum(len(v) for v in by_index.values()),
        "final_indexes": finals,
        "converged": len(set(finals.values())) == 1,
        "restarted": restarted,
        "round_trips": {n: i["restore"] for n, i in ctx.nodes.items() if i.get("restore")},
        "round_trip_errors": rt_errors,
        "mismatch_count": len(mismatches),
        "mismatches": mismatches[:SHOW],
        "unverified": unverified[:SHOW],
        "unverified_count": len(unverified),
        "restores": len(restores),
        "restores_compared": restores_compared,
    }
    if mismatches:
        res["why"] = f"digests differ {mismatches[0]['text']}" + (
            f" (and at {len(mismatches) - 1} more indexes)" if len(mismatches) > 1 else ""
        )
    elif rt_errors:
        node, err = sorted(rt_errors.items())[0]
        res["valid"] = UNKNOWN
        res["why"] = (
            f"the offline restore of {node}'s data failed, so its round trip could not "
            f"be compared: {err[:200]}"
        )
    elif compared == 0:
        res["valid"] = UNKNOWN
        res["why"] = "no index was recorded by two sources, so nothing could be compared"
    return res
