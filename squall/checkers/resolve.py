"""Indeterminate ops resolved from the system's own log (as etcd's robustness
suite patches its histories from the WAL).

A client that timed out cannot say whether its write happened, so the
history records it ``info``: it may take effect at any time after its call,
or never. After a run the system's adapter may say which request ids its
log holds (``System.committed``, stored as ``resolution.json`` beside the
history, which is never rewritten). With that, before the search:

* an ``info`` write whose id the log does not hold, when the adapter says the
  log it read is complete (every committed entry applied), never took
  effect: it is dropped, as a ``fail`` would be;
* an ``info`` write the log holds took effect (a cas as its logged result
  says: a refused precondition changed nothing). Its return is bounded by
  the log: it was committed before every entry after it, so before any op
  acknowledged from a later index returned; the earliest such return is its
  return. With no acknowledged op after it in the log it keeps no return
  (it may take effect at any point after its call, which is all the log
  says).

The bound trusts the log's order, which a Raft log guarantees (an entry is
committed only with every entry before it); dropping trusts its
completeness, which the adapter vouches for or withholds. Without a
resolution, or for ops that carry no request id, nothing changes.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any

from squall.checkers.models import UNKNOWN

# What the linearizability checker needs of its Operation (a NamedTuple there).
INF = float("inf")


def request_id(op: Any) -> str | None:
    """The id a completion (or, failing that, its invoke) was sent under."""
    for event in (op.complete, op.invoke):
        rid = event.extra.get("request_id") if event is not None else None
        if isinstance(rid, str):
            return rid
    return None


def resolve(
    operations: Sequence[Any], resolution: Mapping[str, Any] | None
) -> tuple[list[Any], dict[str, Any] | None]:
    """The operations with their info writes resolved, and what was done (None
    when there is no resolution to apply)."""
    if not isinstance(resolution, Mapping) or not isinstance(resolution.get("committed"), Mapping):
        return list(operations), None
    committed: Mapping[str, Any] = resolution["committed"]
    complete = bool(resolution.get("complete"))
    # Acknowledged ops the log places, by index: the earliest return after each index.
    placed = sorted(
        (entry[0], op.ret)
        for op in operations
        if op.ret != INF
        and (rid := request_id(op)) is not None
        and isinstance(entry := committed.get(rid), list | tuple)
        and isinstance(entry[0], int)
    )
    indices = [i for i, _ in placed]
    earliest = [INF] * (len(placed) + 1)
    for k in range(len(placed) - 1, -1, -1):
        earliest[k] = min(placed[k][1], earliest[k + 1])
    out: list[Any] = []
    n = dict.fromkeys(
        (
            "info_with_id",
            "never_committed",
            "bounded",
            "committed_unbounded",
            "acknowledged_not_in_log",
        ),
        0,
    )
    for op in operations:
        rid = request_id(op)
        if rid is None:
            out.append(op)
            continue
        entry = committed.get(rid)
        if op.output is not UNKNOWN:
            if entry is None and op.ret != INF and op.input[0] != "read":
                n["acknowledged_not_in_log"] += 1
            out.append(op)
            continue
        n["info_with_id"] += 1
        if entry is None:
            if complete:
                n["never_committed"] += 1
                continue  # never took effect: as a fail
            out.append(op)
            continue
        index, took = (
            (entry[0], bool(entry[1])) if isinstance(entry, list | tuple) else (None, True)
        )
        bound = INF
        if isinstance(index, int):
            bound = earliest[bisect.bisect_right(indices, index)]
        if bound == INF or bound <= op.call:
            n["committed_unbounded"] += 1
            out.append(op)
            continue
        n["bounded"] += 1
        # A cas the store refused changed nothing: the model's "precondition failed".
        output = took or op.input[0] != "cas"
        out.append(op._replace(output=output, ret=bound))
    summary: dict[str, Any] = {"source": resolution.get("source"), "complete": complete, **n}
    if not complete:
        summary["why_incomplete"] = resolution.get("why")
    return out, summary


def describe(summary: Mapping[str, Any]) -> str:
    """One line for the report: what the log settled."""
    n = summary["info_with_id"]
    said = (
        f"{n} info write{'s' if n != 1 else ''} looked up in the log ({summary['source']}): "
        f"{summary['never_committed']} never committed, {summary['bounded']} bounded by a later "
        f"entry, {summary['committed_unbounded']} committed without a bound"
    )
    if not summary["complete"]:
        said += (
            f"; the log is not vouched complete ({summary.get('why_incomplete')}), so none dropped"
        )
    if summary["acknowledged_not_in_log"]:
        said += f"; {summary['acknowledged_not_in_log']} acknowledged writes are not in the log"
    return said
