"""The Wing–Gong / Lowe search for one partition, written for CPython's speed.

The history is a doubly linked list of call and return events sorted by
time. The search walks it from the head: at a call it tries to linearize the
operation now (the model accepts it from the current state), removes ("lifts")
the call and its return from the list and starts again from the head; at a
return it has met an operation that had to take effect before this point but
could not, so it backtracks: pops the newest linearized operation, puts it
back and tries the next candidate after it. The list is empty when every
operation was linearized.

Lowe's refinement makes it practical: a configuration is (set of linearized
operations, model state), and two paths reaching the same configuration have
the same future, so each is explored once. The set is a Python int used as a
bitset, the configuration a tuple in a ``set``: hashing and equality are done
in C, with no collision lists to walk as in a hand-rolled hash table.

Speed notes (this loop is the whole cost of a check): the linked list is
parallel Python lists indexed by event number instead of node objects
(no attribute lookups), a head and a tail sentinel remove every None test,
and the clock and the memory bound are consulted once per 4096 backtracks.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from checkers.models import Step

CHECK_EVERY = 4096  # backtracks between clock and memory checks (a power of two)


@dataclass(frozen=True)
class Best:
    """The deepest point the search reached, for the counterexample."""

    order: list[int]  # operation numbers linearized, in order
    states: list[Any]  # the model state after each of them
    stuck: list[int]  # operations that were next in line but could not be linearized
    blocking: int  # the operation whose return was reached without linearizing it


@dataclass(frozen=True)
class Outcome:
    valid: bool | str  # True, False or "unknown"
    states: int  # configurations explored (cache size)
    reason: str | None = None
    best: Best | None = None


def search(
    init: Hashable,
    step: Step,
    inputs: Sequence[Any],
    outputs: Sequence[Any],
    calls: Sequence[float],
    returns: Sequence[float],
    deadline: float | None = None,
    max_states: int | None = None,
    track: bool = False,
) -> Outcome:
    """Is this one partition linearizable? Operation i is (inputs[i], outputs[i]),
    called at calls[i] and returned at returns[i] (inf if it never returned).

    Times are positions in the history, so distinct; an operation returning
    before another is called precedes it in real time, every other pair may
    take effect in either order. ``track`` records the deepest prefix reached
    (used on a second run once a partition is known to be invalid, so the
    common valid case never pays for it).
    """
    n = len(inputs)
    events = sorted([(calls[i], 0, i) for i in range(n)] + [(returns[i], 1, i) for i in range(n)])
    size = 2 * n + 2
    tail = size - 1
    nxt = list(range(1, size + 1))
    prv = list(range(-1, size - 1))
    match = [0] * size  # call event -> its return event; 0 marks a return event
    opno = [0] * size
    call_of = [0] * n
    for node, (_, kind, i) in enumerate(events, start=1):
        opno[node] = i
        if kind == 0:
            call_of[i] = node
        else:
            match[call_of[i]] = node
    inp: list[Any] = [None] * size
    out: list[Any] = [None] * size
    bit = [0] * size
    for i in range(n):
        node = call_of[i]
        inp[node] = inputs[i]
        out[node] = outputs[i]
        bit[node] = 1 << i

    cache: set[tuple[int, Any]] = set()
    add = cache.add
    stack: list[tuple[int, Any, int]] = []
    push = stack.append
    pop = stack.pop
    state: Any = init
    lin = 0
    backtracks = 0
    best_depth = -1
    best: Best | None = None
    e = nxt[0]
    while e != tail:
        r = match[e]
        if r:
            ok, new = step(state, inp[e], out[e])
            if ok:
                key = (lin | bit[e], new)
                if key not in cache:
                    add(key)
                    push((e, state, lin))
                    state = new
                    lin = key[0]
                    p = prv[e]
                    q = nxt[e]
                    nxt[p] = q
                    prv[q] = p
                    p = prv[r]
                    q = nxt[r]
                    nxt[p] = q
                    prv[q] = p
                    if track and len(stack) > best_depth:
                        best_depth = len(stack)
                        best = _snapshot(stack, state, nxt, match, opno)
                    e = nxt[0]
                    continue
            e = nxt[e]
        else:
            if not stack:
                if track and best is None:
                    best = _snapshot(stack, state, nxt, match, opno)
                return Outcome(False, len(cache), best=best)
            e, state, lin = pop()
            r = match[e]
            p = prv[r]
            q = nxt[r]
            nxt[p] = r
            prv[q] = r
            p = prv[e]
            q = nxt[e]
            nxt[p] = e
            prv[q] = e
            e = nxt[e]
            backtracks += 1
            if not backtracks & (CHECK_EVERY - 1):
                if deadline is not None and time.monotonic() > deadline:
                    return Outcome("unknown", len(cache), reason="time limit reached")
                if max_states is not None and len(cache) > max_states:
                    return Outcome(
                        "unknown",
                        len(cache),
                        reason=f"explored more than {max_states} configurations (memory bound)",
                    )
    return Outcome(True, len(cache))


def _snapshot(
    stack: list[tuple[int, Any, int]], state: Any, nxt: list[int], match: list[int], opno: list[int]
) -> Best:
    order = [opno[s[0]] for s in stack]
    states = [s[1] for s in stack[1:]] + [state]
    stuck: list[int] = []
    e = nxt[0]
    while e < len(match) - 1 and match[e]:
        stuck.append(opno[e])
        e = nxt[e]
    blocking = opno[e] if e < len(match) - 1 else -1
    return Best(order=order, states=states, stuck=stuck, blocking=blocking)
