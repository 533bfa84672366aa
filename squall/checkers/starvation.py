"""Write starvation: readers must never hold the writer up.

Aurora's scheduler hung for minutes when many ``getJobUpdateDetails`` reads
held table locks that a write needed. The store here promises readers never
block the writer, so with no fault active every write must finish within
``starvation_bound`` seconds however hard the readers storm.

A write "waited" from its invoke to its completion; one that never completed
waited until the end of the run. Writes that overlap a fault window, or the
``failover_bound`` seconds after it (the cluster is still electing and
catching up then, which is failover's business, not starvation's), are
reported with the faulted figures but not judged. Every outcome counts: a
write that timed out (info) with no fault around waited too long by
definition, and a fail after a long wait is still a long wait.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from squall.checkers.activity import describe
from squall.checkers.base import UNKNOWN, CheckContext
from squall.checkers.stats import NS, Timed, read_fs, summary_s, timed_ops, write_fs
from squall.history import fault_windows

DEFAULT_BOUND_S = 1.0
DEFAULT_FAILOVER_BOUND_S = 2.0
SHOW = 10


def _overlaps_fault(t: Timed, windows: Sequence[tuple[int, int]]) -> bool:
    return any(t.start <= end and t.end >= start for start, end in windows)


def _readers_in_flight(t: Timed, reads: Sequence[Timed]) -> int:
    """How many reads were running while this write was (the storm it faced)."""
    return sum(1 for r in reads if r.start <= t.end and r.end >= t.start)


def _spans(starved: Sequence[Timed]) -> list[list[Timed]]:
    """Starved writes grouped into spans of overlapping waits, in time order."""
    spans: list[list[Timed]] = []
    for t in sorted(starved, key=lambda t: t.start):
        if spans and t.start <= max(x.end for x in spans[-1]):
            spans[-1].append(t)
        else:
            spans.append([t])
    return spans


def _span(span: Sequence[Timed], reads: Sequence[Timed], samples: Sequence[Any]) -> dict[str, Any]:
    """One span of starved writes: when, how many, the read storm, and what the cluster was doing."""
    start, end = min(t.start for t in span), max(t.end for t in span)
    activity = describe(samples, start, end) if samples else {"said": "no status samples recorded"}
    return {
        "start_s": round(start / NS, 3),
        "end_s": round(end / NS, 3),
        "writes": len(span),
        "reads_in_flight_max": max(_readers_in_flight(t, reads) for t in span),
        "doing": activity["said"],
        "activity": activity,
    }


def check_starvation(ctx: CheckContext) -> dict[str, Any]:
    bound = float(ctx.test.get("starvation_bound", DEFAULT_BOUND_S))
    grace = float(ctx.test.get("failover_bound", DEFAULT_FAILOVER_BOUND_S))
    writes_f = write_fs(ctx.test)
    ops = timed_ops(ctx.history)
    writes = [t for t in ops if t.f in writes_f]
    reads_f = read_fs(ctx.test, ops)
    reads = [t for t in ops if t.f in reads_f]
    windows = [(w["start"], w["end"] + int(grace * NS)) for w in fault_windows(ctx.history)]
    clean: list[Timed] = []
    faulted: list[Timed] = []
    for t in writes:
        (faulted if _overlaps_fault(t, windows) else clean).append(t)
    starved = sorted((t for t in clean if t.latency > bound * NS), key=lambda t: -t.latency)
    res: dict[str, Any] = {
        "valid": not starved,
        "bound_s": bound,
        "writes": summary_s(t.latency for t in writes),
        "writes_without_faults": summary_s(t.latency for t in clean),
        "writes_during_faults": summary_s(t.latency for t in faulted),
        "reads": summary_s(t.latency for t in reads),
        "starved_count": len(starved),
        "starved": [
            {
                "op": t.invoke.index,
                "f": t.f,
                "outcome": t.outcome,
                "node": t.invoke.node,
                "start_s": round(t.start / NS, 3),
                "waited_s": round(t.latency / NS, 3),
                "reads_in_flight": _readers_in_flight(t, reads),
            }
            for t in starved[:SHOW]
        ],
    }
    if starved:
        worst = res["starved"][0]
        spans = [_span(span, reads, ctx.samples) for span in _spans(starved)]
        res["spans"] = spans[:SHOW]
        first = next(s for s in spans if s["start_s"] <= worst["start_s"] <= s["end_s"])
        res["why"] = (
            f"{len(starved)} writes waited longer than {bound:g}s with no fault active; "
            f"the worst, {worst['f']} op {worst['op']} at {worst['start_s']:.1f}s, waited "
            f"{worst['waited_s']:.2f}s with {worst['reads_in_flight']} reads in flight; "
            f"{first['writes']} starved in {first['start_s']:.1f}-{first['end_s']:.1f}s "
            f"(up to {first['reads_in_flight_max']} reads in flight), when: {first['doing']}"
        )
    elif not clean:
        res["valid"] = UNKNOWN
        res["why"] = (
            "no write ran outside a fault window, so starvation could not be judged"
            if writes
            else "the history has no writes"
        )
    return res
