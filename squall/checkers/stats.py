"""Per-operation counts, and the small latency helpers the other checkers share.

The stats checker is Jepsen's: count ok/fail/info for every client ``f``; a
run in which some ``f`` never once succeeded is invalid, because then the
other checkers had nothing of that kind to judge and a green verdict would
say nothing (a cluster that refused every write passes a set checker).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from squall.checkers.base import UNKNOWN, CheckContext
from squall.history import FAIL, INFO, OK, Op, client_ops, fault_windows, pair_ops
from squall.util import quantile

DEFAULT_WRITE_FS = ("write", "cas", "add", "transition", "put", "append")
NS = 1_000_000_000


# One colour per fault kind, shared by the plots and the report's timeline so
# a reader matches them by eye.
@dataclass(frozen=True, slots=True)
class Timed:
    """One client operation with its outcome and when it ran (ns since test start).

    ``end`` is the completion time, or the end of the history for an op that
    never completed (indeterminate: it may have run until then).
    """

    f: str
    outcome: str  # ok | fail | info
    start: int
    end: int
    invoke: Op
    complete: Op | None

    @property
    def latency(self) -> int:
        return self.end - self.start


def write_fs(test: Mapping[str, Any]) -> frozenset[str]:
    """The ``f`` values this run treats as writes (``test.write_fs`` overrides)."""
    return frozenset(test.get("write_fs", DEFAULT_WRITE_FS))


def read_fs(test: Mapping[str, Any], ops: Iterable[Timed]) -> frozenset[str]:
    """The ``f`` values that are reads: ``test.read_fs`` if given, else every non-write seen."""
    if test.get("read_fs"):
        return frozenset(test["read_fs"])
    writes = write_fs(test)
    return frozenset(t.f for t in ops if t.f not in writes)


def timed_ops(history: Sequence[Op]) -> list[Timed]:
    """Every client op, paired invoke→completion, in invocation order."""
    clients = client_ops(history)
    end = max((o.time for o in history), default=0)
    out = []
    for p in pair_ops(clients):
        done = p.complete
        out.append(
            Timed(
                f=p.invoke.f,
                outcome=done.type if done is not None else INFO,
                start=p.invoke.time,
                end=done.time if done is not None else end,
                invoke=p.invoke,
                complete=done,
            )
        )
    return out


def summary_s(latencies_ns: Iterable[int]) -> dict[str, Any]:
    """count, p50, p99 and max of latencies, in seconds rounded to the millisecond."""
    vals = [v / NS for v in latencies_ns]

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 3)

    return {
        "count": len(vals),
        "p50": r(quantile(vals, 0.5)),
        "p99": r(quantile(vals, 0.99)),
        "max": r(max(vals) if vals else None),
    }


def windows_s(history: Sequence[Op]) -> list[dict[str, Any]]:
    """Fault windows with start/end in seconds, for plots and reports."""
    return [
        {**w, "start_s": w["start"] / NS, "end_s": w["end"] / NS} for w in fault_windows(history)
    ]


def fault_value(window: Mapping[str, Any]) -> dict[str, Any]:
    """A fault window's completion value (targets, leader, grudge), or {} if it had none.

    A bare list of nodes (the older ``start-kill [n1]`` shape) is read as the targets.
    """
    value = window.get("value")
    if isinstance(value, list):
        return {"targets": value, "leader": None}
    return value if isinstance(value, dict) else {}


def check_stats(ctx: CheckContext) -> dict[str, Any]:
    """Counts per client f; invalid if some f was attempted but never succeeded."""
    by_f: dict[str, dict[str, int]] = {}
    errors: dict[str, Counter[str]] = {}
    for t in timed_ops(ctx.history):
        c = by_f.setdefault(t.f, {"count": 0, OK: 0, FAIL: 0, INFO: 0})
        c["count"] += 1
        c[t.outcome] += 1
        if t.complete is not None and t.complete.error:
            errors.setdefault(t.f, Counter())[str(t.complete.error)] += 1
    if not by_f:
        return {"valid": UNKNOWN, "why": "the history has no client operations", "by_f": {}}
    never = sorted(f for f, c in by_f.items() if c[OK] == 0)
    totals = {k: sum(c[k] for c in by_f.values()) for k in ("count", OK, FAIL, INFO)}
    res: dict[str, Any] = {
        "valid": not never,
        **totals,
        "by_f": by_f,
        "never_ok": never,
        "errors": {f: dict(c.most_common(5)) for f, c in sorted(errors.items())},
    }
    if never:
        res["why"] = "; ".join(_never_ok(f, by_f[f], errors.get(f)) for f in never)
    return res


def _never_ok(f: str, counts: Mapping[str, int], errors: Counter[str] | None) -> str:
    # The commonest error is usually the whole story (not_found: the route is missing).
    text = f"none of {counts['count']} {f} operations succeeded"
    if errors:
        err, n = errors.most_common(1)[0]
        text += f" (most common error: {err} ×{n})"
    return text
