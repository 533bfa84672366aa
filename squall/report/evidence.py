"""Why a run went red, and when: what the proof matrix prints under its table.

A red verdict alone proves little: a person must see *which* op, key or index
the checker points at and *which* fault was acting on the store then, to tell
a caught bug from a schedule that broke the correct store. The deciding
checker already says the first (its ``why``); this module finds the moment of
the first evidence in the history and the faults around it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from squall.checkers.stats import fault_value
from squall.nemesis.grudges import components


def detection_seconds(results: dict[str, Any], history_path: Path | None = None) -> float | None:
    """The earliest moment (s since the run started) of evidence a failing checker points at.

    Linearizability: the first op that could not be linearized. Set: the
    invocation of the first lost element. Others point at no single op.
    """
    times: list[float] = []
    lin = results.get("linearizable") or {}
    if lin.get("valid") is False:
        ce = lin.get("counterexample") or {}
        blocking = ce.get("blocking")
        ops = list(ce.get("unlinearizable") or []) + (
            [blocking] if isinstance(blocking, dict) else []
        )
        for op in ops:
            if isinstance(op, dict) and isinstance(op.get("time"), int | float):
                times.append(op["time"] / 1e9)
    sets = results.get("set") or {}
    lost = (sets.get("lost") or {}).get("first") if isinstance(sets.get("lost"), dict) else None
    if sets.get("valid") is False and lost and history_path is not None and history_path.exists():
        from squall.history import iter_history

        wanted = set(lost)
        for op in iter_history(history_path):
            if op.f == "add" and op.type == "invoke" and op.value in wanted:
                times.append(op.time / 1e9)
                break
    return min(times) if times else None


def evidence(
    results: dict[str, Any], deciders: list[str], detected_s: float | None, history_path: Path
) -> str:
    """Why the run went red, in one line: the deciding checker's own reason
    (which op, key or index) and the fault that was acting on the store then.

    With a detection time, the faults active at that moment (or else the last
    one healed before it); without one (fidelity compares digests after the
    run), the faults that hit the nodes the checker names.
    """
    if not deciders:
        return ""
    first = results.get(deciders[0]) or {}
    why = str(first.get("why") or f"{deciders[0]} failed")
    served = _served_by(first)
    if served:
        why = f"{why}, served by {served}"
    windows = _windows(history_path)
    if not windows:
        return why
    if detected_s is not None:
        at = detected_s * 1e9
        active = [w for w in windows if w["start"] <= at <= w["end"]]
        before = [w for w in windows if w["end"] < at]
        after = [w for w in windows if w["start"] > at]
        if active:
            return f"{why} — at {detected_s:.1f}s, during {_describe(active)}"
        # A lost write is acknowledged before the fault that loses it: name both sides.
        around = ([f"after {_describe(before[-1:])}"] if before else []) + (
            [f"before {_describe(after[:1])}"] if after else []
        )
        return f"{why} — at {detected_s:.1f}s, " + (", ".join(around) or "with no fault in the run")
    nodes = _named_nodes(first)
    hits = [w for w in windows if nodes & _hit(w)]
    return f"{why} — {_describe(hits)}" if hits else why


def _served_by(result: dict[str, Any]) -> str:
    """The node that answered the operation a linearizability counterexample points at."""
    ce = result.get("counterexample") if isinstance(result.get("counterexample"), dict) else None
    if not ce:
        return ""
    ops = list(ce.get("unlinearizable") or []) + [ce.get("blocking")]
    nodes = [o.get("node") for o in ops if isinstance(o, dict) and o.get("node")]
    return str(nodes[0]) if nodes else ""


def _windows(history_path: Path) -> list[dict[str, Any]]:
    if not history_path.exists():
        return []
    from squall.history import fault_windows, iter_history

    return fault_windows(iter_history(history_path))


def _targets(window: Mapping[str, Any]) -> list[str]:
    return [str(t) for t in fault_value(window).get("targets") or []]


def _sides(window: Mapping[str, Any]) -> list[list[str]]:
    """A partition's groups of nodes that still hear each other both ways, largest first."""
    grudge = fault_value(window).get("grudge")
    nodes = _targets(window)
    if not isinstance(grudge, dict) or not nodes:
        return [nodes]
    return sorted((sorted(c) for c in components(grudge, nodes)), key=lambda c: (-len(c), c))


def _hit(window: dict[str, Any]) -> set[str]:
    """The nodes a fault acted on: its targets, or the cut-off side(s) of a partition."""
    sides = _sides(window)
    return {n for side in sides[1:] for n in side} if len(sides) > 1 else set(_targets(window))


def sides_of(window: Mapping[str, Any]) -> str:
    """A partition's sides in words: ``n1,n2,n4,n5 | n3`` (largest first)."""
    return " | ".join(",".join(side) for side in _sides(window))


def describe_window(window: dict[str, Any]) -> str:
    """A fault window in words: a partition by its sides and leader, others by their targets."""
    sides = _sides(window)
    leader = fault_value(window).get("leader")
    if len(sides) > 1:
        what = " | ".join(",".join(side) for side in sides)
    else:
        what = ",".join(sides[0]) or "?"
    lead = f", leader {leader}" if leader and window["fault"] == "partition" else ""
    return f"{window['fault']} of {what}{lead} from {window['start'] / 1e9:.1f}s"


def _describe(windows: list[dict[str, Any]], most: int = 3) -> str:
    parts = [describe_window(w) for w in windows[:most]]
    more = f" (+{len(windows) - most} more)" if len(windows) > most else ""
    return "; ".join(parts) + more


def _named_nodes(result: dict[str, Any]) -> set[str]:
    """Nodes a result points at: the sources of fidelity's mismatching digests."""
    out: set[str] = set()
    for m in result.get("mismatches") or []:
        for side in ("a", "b"):
            node = (m.get(side) or {}).get("node") if isinstance(m, dict) else None
            if isinstance(node, str):
                out.add(node)
    return out
