"""Bounded failover: after a fault hits the leader, service comes back in time.

For every fault window (``squall.history.fault_windows``) we measure, from the
moment the fault took effect, how long until the first acknowledged write
*invoked after it* completed, and the same for reads. Ops invoked before the
fault do not count: an op already in flight at the old leader says nothing
about whether a new one can make progress. A kind of op is judged only if
clients tried it within the bound (see ``_judge``).

Only faults that hit the leader are judged against ``failover_bound``: a
kill, pause, power cut or disk stall whose targets include ``value.leader``, or a
partition that leaves the leader without a majority. Other faults (and
clock skew or slow links, which need no failover) are listed with their
times but not judged.

A fault that takes out a majority cannot be recovered from until it ends,
by design of any quorum system, so for those the clock starts at the end of
the fault instead (``measured_from: "end"``). A judged fault after which no
write (or read) is acknowledged before the run ends is a failure: the
cluster never recovered.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from squall.checkers.base import CheckContext
from squall.checkers.stats import NS, Timed, fault_value, read_fs, timed_ops, write_fs
from squall.faults import effect
from squall.history import OK, fault_windows
from squall.util import quantile

# Faults that may take the leader away are judged; a fault that only slows or
# skews (squall.faults effect "degrades") needs no failover.
JUDGED_EFFECTS = ("stops", "disk", "network")
DEFAULT_BOUND_S = 2.0


def _nodes(ctx: CheckContext) -> list[str]:
    """The cluster's nodes: from the config (a list, or a count meaning n1..nN), else collected."""
    nodes = ctx.test.get("nodes") or list(ctx.nodes)
    if isinstance(nodes, int):
        return [f"n{i}" for i in range(1, nodes + 1)]
    return [str(n) for n in nodes]


def _majority(n: int) -> int:
    return n // 2 + 1


def _partition_isolates(
    leader: str, grudge: Mapping[str, Collection[str]], nodes: Sequence[str]
) -> bool:
    """True if the leader can no longer exchange messages with a majority.

    Raft needs both directions (append entries out, acks back), so a node
    counts as reachable only if neither side holds a grudge against the other.
    """
    cut_from = set(grudge.get(leader, ()))
    reach = {
        n
        for n in nodes
        if n == leader or (n not in cut_from and leader not in set(grudge.get(n, ())))
    }
    return len(reach) < _majority(len(nodes))


def _classify(window: Mapping[str, Any], nodes: Sequence[str]) -> tuple[bool, bool]:
    """(hits the leader, takes out a majority) for one fault window."""
    value = fault_value(window)
    leader = value.get("leader")
    targets = set(value.get("targets") or [])
    kind = window["fault"]
    if effect(kind) not in JUDGED_EFFECTS:
        return False, False
    if not nodes:  # cluster size unknown: judge from the fault's start, the strict choice
        return leader is not None and leader in targets, False
    if kind == "partition" and value.get("grudge"):
        hits = leader is not None and _partition_isolates(leader, value["grudge"], nodes)
        # No side keeps a majority if the biggest well-connected group is a minority.
        majority_gone = all(_partition_isolates(n, value["grudge"], nodes) for n in nodes)
        return hits, majority_gone
    hits = leader is not None and leader in targets
    return hits, len(nodes) - len(targets & set(nodes)) < _majority(len(nodes))


class _Attempts:
    """The ops of one kind (writes or reads), indexed for "what happened after time t".

    Each fault asks when ops invoked after it were first tried and first
    acknowledged; sorting once and keeping the suffix minimum of ack times
    answers that in O(log n) per fault instead of a scan of the history.
    """

    def __init__(
        self,
        ops: Sequence[Timed],
        fs: frozenset[str],
        down: frozenset[str] = frozenset(),
        until: float = 0,
    ) -> None:
        """``down`` nodes' acks before ``until`` (the fault's end) do not count."""
        mine = sorted((t for t in ops if t.f in fs), key=lambda t: t.start)
        self.starts = [t.start for t in mine]
        inf = float("inf")
        self.first_ack_from: list[float] = [inf] * (len(mine) + 1)
        for i in range(len(mine) - 1, -1, -1):
            done = mine[i].complete
            stopped = done is not None and done.node in down and mine[i].end < until
            acked = mine[i].outcome == OK and not stopped
            end = mine[i].end if acked else inf
            self.first_ack_from[i] = min(end, self.first_ack_from[i + 1])

    def after(self, since: int) -> dict[str, Any]:
        """Seconds from ``since``: ``back`` to the first ack of an op invoked after it,
        ``first_try`` / ``last_try`` to the first and last such invocation (None: none)."""
        i = bisect.bisect_left(self.starts, since)

        def s(x: float) -> float | None:
            return None if x == float("inf") else round((x - since) / NS, 3)

        tried = i < len(self.starts)
        return {
            "back": s(self.first_ack_from[i]),
            "first_try": s(self.starts[i]) if tried else None,
            "last_try": s(self.starts[-1]) if tried else None,
        }


def _judge(row: dict[str, Any], rec: dict[str, dict[str, Any]], bound: float) -> list[str]:
    """Failures for one leader-hitting fault; a kind nobody tried within the bound is not judged.

    Clients that were not trying say nothing about availability: the set
    workload reads only once, after the load, and a fault just before the
    load stops has no ops after it. Only when someone tried within the bound
    does a slow or missing acknowledgement count against the cluster.
    """
    problems = []
    label = f"{row['fault']} at {row['start_s']:.1f}s (leader {row['leader']})"
    for kind in ("write", "read"):
        r = rec[kind]
        if r["first_try"] is None or r["first_try"] > bound:
            continue
        if r["back"] is None:
            if r["last_try"] > bound:
                problems.append(
                    f"after {label} no {kind} was ever acknowledged again "
                    f"(clients kept trying for {r['last_try']:.1f}s)"
                )
        elif r["back"] > bound:
            problems.append(
                f"after {label} the first {kind} took {r['back']:.2f}s > bound {bound:g}s"
            )
    return problems


def _by_kind(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for kind in sorted({r["fault"] for r in rows}):
        mine = [r for r in rows if r["fault"] == kind]
        entry: dict[str, Any] = {"count": len(mine), "judged": sum(r["judged"] for r in mine)}
        for what in ("write", "read"):
            vals = [
                r[f"{what}_recovery_s"]
                for r in mine
                if r["judged"] and r[f"{what}_recovery_s"] is not None
            ]
            entry[f"{what}_p50_s"] = quantile(vals, 0.5)
            entry[f"{what}_max_s"] = max(vals) if vals else None
        out[kind] = entry
    return out


def check_failover(ctx: CheckContext) -> dict[str, Any]:
    bound = float(ctx.test.get("failover_bound", DEFAULT_BOUND_S))
    windows = fault_windows(ctx.history)
    nodes = _nodes(ctx)
    writes = write_fs(ctx.test)
    ops = timed_ops(ctx.history)
    reads = read_fs(ctx.test, ops)
    by_down: dict[tuple[frozenset[str], int], dict[str, _Attempts]] = {}
    rows, problems = [], []
    for w in windows:
        hits, majority_gone = _classify(w, nodes)
        since = w["end"] if majority_gone else w["start"]
        value = fault_value(w)
        # A killed node answers for the few ms its signal takes to land (a node with
        # early-ack did): service is back only when a node the fault spared answers.
        down = (
            frozenset(value.get("targets") or []) if effect(w["fault"]) == "stops" else frozenset()
        )
        key = (down, w["end"] if down else 0)
        if key not in by_down:
            by_down[key] = {
                "write": _Attempts(ops, writes, *key),
                "read": _Attempts(ops, reads, *key),
            }
        attempts = by_down[key]
        rec = {"write": attempts["write"].after(since), "read": attempts["read"].after(since)}
        row = {
            "fault": w["fault"],
            "start_s": round(w["start"] / NS, 3),
            "end_s": round(w["end"] / NS, 3),
            "leader": value.get("leader"),
            "targets": value.get("targets"),
            "hits_leader": hits,
            "judged": hits,
            "not_judged_because": None
            if hits
            else (
                "leader untouched" if effect(w["fault"]) in JUDGED_EFFECTS else "needs no failover"
            ),
            "measured_from": "end" if majority_gone else "start",
            "write_recovery_s": rec["write"]["back"],
            "read_recovery_s": rec["read"]["back"],
        }
        row_problems = _judge(row, rec, bound) if hits else []
        row["ok"] = not row_problems if hits else None
        rows.append(row)
        problems += row_problems
    res: dict[str, Any] = {
        "valid": not problems,
        "bound_s": bound,
        "faults_count": len(rows),
        "faults_judged": sum(r["judged"] for r in rows),
        "faults": rows,
        "by_kind": _by_kind(rows),
        "failures": problems,
    }
    if problems:
        res["why"] = problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
    elif not any(r["judged"] for r in rows):
        # Nothing to judge is not a failure of the system; say so rather than go unknown,
        # which would turn every run with only link or clock faults into exit code 2.
        res["note"] = (
            "no fault hit the leader, so failover was never exercised"
            if rows
            else "no faults were injected"
        )
    return res
