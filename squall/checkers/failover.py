"""Bounded failover: every fault window is judged by what it should cost the service.

Each window (``squall.history.fault_windows``) gets a class
(``squall.checkers.fault_class``) and is judged against ``failover_bound``:

* ``leader``: from the fault's start to the first acknowledged write, and
  read, *invoked after it*. Ops invoked before the fault do not count: an op
  already in flight at the old leader says nothing about whether a new one
  can make progress.
* ``majority``: the same, from the fault's heal (no quorum system can serve
  while a majority is gone).
* ``service``: the longest gap between acknowledged writes (and reads) while
  the fault acts, from its start to its end (or to the last op of that kind
  invoked, if the load stopped first). Time that another, failover-class
  fault excuses (its window up to the bound after it should be back) is not
  counted against this one: two overlapping faults are judged by the worse
  class, once.

A kind of op is left unjudged only when clients did not try it (within the
bound of a recovery, or while a service fault acted), and the row says so.
A recovery after which no op of that kind is acknowledged before the run
ends, though clients kept trying, is a failure: the cluster never recovered.
Acknowledgements from the nodes a kill or pause stopped, before it ended, do
not count (a killed node answers for the few ms its signal takes to land).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from squall.checkers.base import CheckContext
from squall.checkers.fault_class import Classified, classify
from squall.checkers.stats import NS, Timed, fault_value, read_fs, timed_ops, write_fs
from squall.faults import effect
from squall.history import OK, fault_windows
from squall.util import quantile

DEFAULT_BOUND_S = 2.0
KINDS = ("write", "read")
Interval = tuple[int, int]


def _nodes(ctx: CheckContext) -> list[str]:
    """The cluster's nodes: from the config (a list, or a count meaning n1..nN), else collected."""
    nodes = ctx.test.get("nodes") or list(ctx.nodes)
    if isinstance(nodes, int):
        return [f"n{i}" for i in range(1, nodes + 1)]
    return [str(n) for n in nodes]


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
        acks = []
        for i in range(len(mine) - 1, -1, -1):
            done = mine[i].complete
            stopped = done is not None and done.node in down and mine[i].end < until
            acked = mine[i].outcome == OK and not stopped
            if acked:
                acks.append(mine[i].end)
            end = mine[i].end if acked else inf
            self.first_ack_from[i] = min(end, self.first_ack_from[i + 1])
        self.acks = sorted(acks)
        # latest_end[i]: the latest any of the first i ops (by invoke) ended, the open ones at
        # the history's end: how long clients were still waiting on something.
        self.latest_end = [0]
        for t in mine:
            self.latest_end.append(max(self.latest_end[-1], t.end))

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

    def longest_gap(self, start: int, end: int, excused: Sequence[Interval]) -> dict[str, Any]:
        """The longest stretch of [start, end] with no acknowledgement, less ``excused`` time.

        Clients were trying if an op of this kind was in flight in the window
        (workers blocked on a hung op count). The stretch ends when the last op
        invoked by the window's end did, if the load stopped before the fault
        did: a silence nobody asked into is not a stall. ``gap`` is None when no
        op of this kind was in flight.
        """
        hi = bisect.bisect_right(self.starts, end)
        if self.latest_end[hi] < start:
            return {"gap": None, "at": None}
        until = min(end, self.latest_end[hi])
        a, b = bisect.bisect_right(self.acks, start), bisect.bisect_left(self.acks, until)
        points = [start, *self.acks[a:b], until]
        best, at = 0, start
        for x, y in zip(points, points[1:], strict=False):
            for piece in _less(x, y, excused):
                if piece[1] - piece[0] > best:
                    best, at = piece[1] - piece[0], piece[0]
        return {"gap": round(best / NS, 3), "at": round(at / NS, 3)}


def _less(x: int, y: int, excused: Sequence[Interval]) -> list[Interval]:
    """[x, y] with the (sorted, disjoint) excused intervals cut out."""
    out, cur = [], x
    for a, b in excused:
        if b <= cur or a >= y:
            continue
        if a > cur:
            out.append((cur, a))
        cur = max(cur, b)
    if cur < y:
        out.append((cur, y))
    return out


def _merged(intervals: Sequence[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _judge_recovery(
    row: dict[str, Any], rec: dict[str, dict[str, Any]], bound: float
) -> tuple[list[str], dict[str, str]]:
    """Failures for a leader or majority fault, and why a kind was left unjudged.

    Clients that were not trying say nothing about availability: the set
    workload reads only once, after the load, and a fault just before the
    load stops has no ops after it. Only when someone tried within the bound
    does a slow or missing acknowledgement count against the cluster.
    """
    problems, unjudged = [], {}
    since = "its heal" if row["class"] == "majority" else "it"
    for kind in KINDS:
        r = rec[kind]
        if r["first_try"] is None or r["first_try"] > bound:
            unjudged[kind] = f"no {kind} was attempted within {bound:g}s of {since}"
        elif r["back"] is None and r["last_try"] <= bound:
            unjudged[kind] = f"clients stopped trying {kind}s {r['last_try']:.1f}s after {since}"
        elif r["back"] is None:
            problems.append(
                f"after {row['label']} no {kind} was ever acknowledged again "
                f"(clients kept trying for {r['last_try']:.1f}s)"
            )
        elif r["back"] > bound:
            problems.append(
                f"after {row['label']} the first {kind} took {r['back']:.2f}s > bound {bound:g}s"
            )
    return problems, unjudged


def _judge_service(
    row: dict[str, Any], gaps: dict[str, dict[str, Any]], bound: float
) -> tuple[list[str], dict[str, str]]:
    """Failures for a fault that leaves a working majority: no stall longer than the bound."""
    problems, unjudged = [], {}
    for kind in KINDS:
        g = gaps[kind]
        if g["gap"] is None:
            unjudged[kind] = f"no {kind} was attempted while it acted"
        elif g["gap"] > bound:
            problems.append(
                f"during {row['label']} {kind}s stalled for {g['gap']:.2f}s "
                f"(from {g['at']:.1f}s) > bound {bound:g}s"
            )
    return problems, unjudged


def _by_kind(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per fault kind: recovery p50/max over its leader and majority windows, and the
    longest stall over its service windows (a follower kill is not a failover)."""
    out: dict[str, dict[str, Any]] = {}
    for kind in sorted({r["fault"] for r in rows}):
        mine = [r for r in rows if r["fault"] == kind]
        entry: dict[str, Any] = {"count": len(mine), "judged": sum(r["judged"] for r in mine)}
        for what in KINDS:
            vals = [r[f"{what}_recovery_s"] for r in mine if r[f"{what}_recovery_s"] is not None]
            entry[f"{what}_p50_s"] = quantile(vals, 0.5)
            entry[f"{what}_max_s"] = max(vals) if vals else None
            gaps = [r[f"{what}_gap_s"] for r in mine if r[f"{what}_gap_s"] is not None]
            entry[f"{what}_gap_max_s"] = max(gaps) if gaps else None
        out[kind] = entry
    return out


def _excuses(
    windows: Sequence[dict[str, Any]], classes: Sequence[Classified], bound: float
) -> list[Interval]:
    """The time failover-class faults may take: from their start to the bound past their
    start (leader) or heal (majority). A service fault is not blamed for it."""
    out = []
    for w, c in zip(windows, classes, strict=True):
        if c.cls != "service":
            since = w["end"] if c.cls == "majority" else w["start"]
            out.append((w["start"], since + int(bound * NS)))
    return _merged(out)


class _Index:
    """_Attempts per (stopped nodes, until when): built once for each distinct pair."""

    def __init__(self, ctx: CheckContext) -> None:
        self.ops = timed_ops(ctx.history)
        self.writes = write_fs(ctx.test)
        self.reads = read_fs(ctx.test, self.ops)
        self._cache: dict[tuple[frozenset[str], int], dict[str, _Attempts]] = {}

    def for_window(self, w: dict[str, Any]) -> dict[str, _Attempts]:
        value = fault_value(w)
        stops = effect(w["fault"]) == "stops"
        down = frozenset(value.get("targets") or []) if stops else frozenset()
        key = (down, w["end"] if down else 0)
        if key not in self._cache:
            self._cache[key] = {
                "write": _Attempts(self.ops, self.writes, *key),
                "read": _Attempts(self.ops, self.reads, *key),
            }
        return self._cache[key]


def _row(
    w: dict[str, Any],
    c: Classified,
    attempts: dict[str, _Attempts],
    excused: Sequence[Interval],
    bound: float,
) -> tuple[dict[str, Any], list[str]]:
    """One fault's row of the table, and its failures."""
    value = fault_value(w)
    row: dict[str, Any] = {
        "fault": w["fault"],
        "start_s": round(w["start"] / NS, 3),
        "end_s": round(w["end"] / NS, 3),
        "leader": value.get("leader"),
        "targets": value.get("targets"),
        "class": c.cls,
        "class_reason": c.reason,
        "hits_leader": c.cls == "leader",
        "measured_from": "end" if c.cls == "majority" else "start",
        "label": f"{w['fault']} at {w['start'] / NS:.1f}s ({c.reason})",
    }
    for kind in KINDS:
        row[f"{kind}_recovery_s"] = row[f"{kind}_gap_s"] = None
    if c.cls == "service":
        row["measure"] = "longest gap between acks while it acted"
        # The window's own time inside another fault's excuse is that fault's to answer for.
        gaps = {k: attempts[k].longest_gap(w["start"], w["end"], excused) for k in KINDS}
        for kind in KINDS:
            row[f"{kind}_gap_s"] = gaps[kind]["gap"]
        problems, unjudged = _judge_service(row, gaps, bound)
    else:
        row["measure"] = (
            "from its heal to the first ack"
            if c.cls == "majority"
            else "from its start to the first ack"
        )
        since = w["end"] if c.cls == "majority" else w["start"]
        rec = {k: attempts[k].after(since) for k in KINDS}
        for kind in KINDS:
            row[f"{kind}_recovery_s"] = rec[kind]["back"]
        problems, unjudged = _judge_recovery(row, rec, bound)
    row["judged"] = len(unjudged) < len(KINDS)
    row["unjudged"] = unjudged
    row["not_judged_because"] = None if row["judged"] else "; ".join(unjudged.values())
    row["ok"] = (not problems) if row["judged"] else None
    return row, problems


def check_failover(ctx: CheckContext) -> dict[str, Any]:
    bound = float(ctx.test.get("failover_bound", DEFAULT_BOUND_S))
    windows = fault_windows(ctx.history)
    nodes = _nodes(ctx)
    classes = [classify(w, nodes) for w in windows]
    excused = _excuses(windows, classes, bound)
    index = _Index(ctx)
    rows, problems = [], []
    for w, c in zip(windows, classes, strict=True):
        # Only failover-class faults excuse time, so a service window is never excused by itself.
        row, row_problems = _row(w, c, index.for_window(w), excused, bound)
        rows.append(row)
        problems += row_problems
    res: dict[str, Any] = {
        "valid": not problems,
        "bound_s": bound,
        "faults_count": len(rows),
        "faults_judged": sum(r["judged"] for r in rows),
        "by_class": {
            k: sum(r["class"] == k for r in rows) for k in ("leader", "majority", "service")
        },
        "faults": rows,
        "by_kind": _by_kind(rows),
        "failures": problems,
    }
    if problems:
        res["why"] = problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
    elif not any(r["judged"] for r in rows):
        # Nothing to judge is not a failure of the system; say so rather than go unknown,
        # which would turn every run whose load ended before its faults into exit code 2.
        res["note"] = (
            "no client op was attempted while any fault acted or recovered"
            if rows
            else "no faults were injected"
        )
    return res
