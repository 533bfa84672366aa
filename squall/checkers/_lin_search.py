"""The Wing–Gong / Lowe search for one partition, written for CPython's speed.

The history is a doubly linked list of call and return events sorted by
time. The candidates to take effect next are the ops called before the first
return event still in the list. The search tries one (the model accepts it
from the current state), removes ("lifts") its call and return from the list
and starts over; when no candidate fits it backtracks: pops the newest
linearized operation, puts it back and tries the next candidate. It succeeds
when no return event is left (indeterminate ops have none: they may stay
pending for ever, which is "never took effect").

Prunings on top of Lowe's cache, each argued where it is applied: a pure op
(a read) that fits is a forced move, not a choice; an indeterminate op is
never placed where it changes nothing, identical indeterminate ops take
effect in call order, and a configuration is dominated by one that reached
the same state with fewer indeterminate ops spent; the op owning the first
return is tried first.

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

import math
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from squall.checkers.models import NO as _NO
from squall.checkers.models import Step

CHECK_EVERY = 4096  # backtracks between clock and memory checks (a power of two)
DOMINANCE_CHECKS = 16  # most masks compared per configuration (see the cache below)
# Reads the look-ahead examines per configuration (see ``_dead``): a few
# where at most LOOK_CROWD ops that return are ever open at once, and (nearly)
# all of them where more are. Measured (compiled core, bench/checker.py's
# generator): 50 clients on 10 keys (5 open a key) explore 58 k configurations
# with 16 and 50 k with all, but take 3.7x the time walking; 40-70 clients
# putting and getting one key are decided in 4-23 k configurations with all,
# and not at all within 60 s with 16 or 256 (the read that proves an order
# wrong is often hundreds of returns ahead).
LOOK_RETURNS = 16
LOOK_RETURNS_CROWDED = 4096
LOOK_CROWD = 16


@dataclass(frozen=True)
class Best:
    """The deepest point the search reached, for the counterexample."""

    order: list[int]  # operation numbers linearized, in order
    states: list[Any]  # the model state after each of them
    stuck: list[int]  # operations that were next in line but could not be linearized
    blocking: int  # the operation whose return was reached without linearizing it


class Outcome(NamedTuple):
    """One partition's answer. A named tuple: one is made per partition of
    every history checked, and a frozen dataclass's __init__ cost a fifth of
    the compiled search of a small partition."""

    valid: bool | str  # True, False or "unknown"
    states: int  # configurations explored
    reason: str | None = None
    best: Best | None = None
    peak_bytes: int | None = None  # the cache's peak size, where the core can weigh it
    core: str = "python"  # which search gave this outcome


def search(
    init: Hashable,
    step: Step,
    inputs: Sequence[Any],
    outputs: Sequence[Any],
    calls: Sequence[float],
    returns: Sequence[float],
    pure: Sequence[bool] | None = None,
    *,
    deadline: float | None = None,
    max_states: int | None = None,
    track: bool = False,
    look: tuple[str, Sequence[Any], Sequence[Any]] | None = None,
) -> Outcome:
    """Is this one partition linearizable? Operation i is (inputs[i], outputs[i]),
    called at calls[i] and returned at returns[i] (inf: indeterminate, its
    output is ``UNKNOWN``). ``pure[i]`` says op i never changes any state (a
    read, a cas that observed a mismatch).

    Times are positions in the history, so distinct; an operation returning
    before another is called precedes it in real time, every other pair may
    take effect in either order. ``track`` records the deepest prefix reached
    (used on a second run once a partition is known to be invalid, so the
    common valid case never pays for it).

    ``look`` is (reach, wants, sets) for the look-ahead below: ``wants[i]`` is
    the state op i must see to take effect (a read's result), ``sets[i]`` the
    state op i may leave that the model's other ops cannot reach (a write's
    value), ``_NO`` where there is none; ``reach`` is ``"eq"`` when ops that
    set nothing never change the state, ``"prefix"`` when they only extend a
    string (kv appends). None turns the look-ahead off (a user's model).
    """
    n = len(inputs)
    pure = pure if pure is not None else [False] * n
    finite = [i for i in range(n) if not math.isinf(returns[i])]
    indeterminate = [i for i in range(n) if math.isinf(returns[i])]
    events = sorted([(calls[i], 0, i) for i in range(n)] + [(returns[i], 1, i) for i in finite])
    size = len(events) + 2
    nxt = list(range(1, size + 1))
    prv = list(range(-1, size - 1))
    # call event -> its return event, -1 for an indeterminate op (it has no
    # return event: it may stay pending for ever); 0 marks a return event.
    match = [0] * size
    owner = [0] * size  # return event -> its call event (0 for the tail)
    opno = [0] * size
    call_of = [0] * n
    for node, (_, kind, i) in enumerate(events, start=1):
        opno[node] = i
        if kind == 0:
            call_of[i] = node
            match[node] = -1
        else:
            match[call_of[i]] = node
            owner[node] = call_of[i]
    inp: list[Any] = [None] * size
    out: list[Any] = [None] * size
    forced = [False] * size
    for i in range(n):
        node = call_of[i]
        inp[node] = inputs[i]
        out[node] = outputs[i]
        forced[node] = bool(pure[i])
    wants = [_NO] * size
    sets = [_NO] * size
    reach = None
    if look is not None:
        reach = look[0]
        for i in range(n):
            wants[call_of[i]] = look[1][i]
            sets[call_of[i]] = look[2][i]
    tail = size - 1
    look_returns = LOOK_RETURNS
    if reach is not None:
        now = most = 0
        for _, kind, i in events:
            if not math.isinf(returns[i]):
                now += -1 if kind else 1
                most = max(most, now)
        if most > LOOK_CROWD:
            look_returns = LOOK_RETURNS_CROWDED
    # The linearized set is (low, rel, ib). Ops that returned are numbered in
    # call order: every one below ``low`` is linearized, bit j of ``rel`` says
    # whether op low + j is (bit 0 is always clear, so the form is canonical).
    # That keeps the key as narrow as the window of open operations, where a
    # plain bitset grows with the history: a long single-key history would
    # cost memory quadratic in its length. Indeterminate ops may never be
    # linearized and would pin ``low``, so they get their own bits in ``ib``.
    rank = [-1] * size
    ibit = [0] * size
    for r, node in enumerate(sorted(call_of[i] for i in finite)):
        rank[node] = r
    # Identical indeterminate ops (same input) are interchangeable: whichever
    # was called first can stand in for the other at any point the other
    # could take effect. So only orders where they take effect in call order
    # are explored: op k may go only once its previous twin has (``need``).
    need = [0] * size
    last_twin: dict[Any, int] = {}
    for k, i in enumerate(sorted(indeterminate, key=lambda i: call_of[i])):
        node = call_of[i]
        ibit[node] = 1 << k
        need[node] = last_twin.get(inputs[i], 0)
        last_twin[inputs[i]] = ibit[node]

    cache: dict[tuple[int, int, Any], Any] = {}
    get = cache.get
    explored = 0
    stack: list[tuple[int, Any, int, int, int, int]] = []
    push = stack.append
    pop = stack.pop
    state: Any = init
    low = rel = ib = 0
    backtracks = 0
    trace = _Trace() if track else None
    # Candidates are the ops whose call precedes the first return event in
    # the list. The op owning that return must take effect before it, so it
    # is tried first ("urgent"); the others follow in call order. Trying the
    # urgent op first is what Lowe's just-in-time linearization gets at: an
    # op that is not yet needed (a slow append, an indeterminate write) is
    # not placed speculatively ahead of ones that are.
    x = nxt[0]
    while match[x]:
        x = nxt[x]
    urg = owner[x]
    if not urg:
        return Outcome(True, 0)
    e = urg
    while True:
        r = match[e]
        if r:
            ok, new = step(state, inp[e], out[e])
            if ok:
                j = rank[e]
                if j < 0:
                    if new == state or need[e] & ~ib:
                        # Taking effect here changes nothing, which "never"
                        # (always allowed for an indeterminate op) already
                        # covers; or its earlier twin has not (see ``need``).
                        e = nxt[0] if e == urg else nxt[e]
                        if e == urg:
                            e = nxt[e]
                        continue
                    nlow = low
                    nrel = rel
                    nib = ib | ibit[e]
                else:
                    nib = ib
                    j -= low
                    if j:
                        nlow = low
                        nrel = rel | (1 << j)
                    else:
                        nrel = rel | 1
                        j = (nrel ^ (nrel + 1)).bit_length() - 1  # trailing ones
                        nrel >>= j
                        nlow = low + j
                # The cache maps (finite ops linearized, state) to the sets of
                # indeterminate ops linearized on the way, and a configuration
                # is skipped when one with a subset of them was seen: having
                # left an indeterminate op pending can only allow more (it may
                # still take effect, or never). Without this, every timed-out
                # write would double the configurations for the rest of the
                # history, even long after its value was overwritten.
                key = (nlow, nrel, new)
                seen = get(key)
                if seen is None:
                    cache[key] = nib
                    fresh = True
                elif type(seen) is int:
                    fresh = seen & ~nib != 0
                    if fresh:
                        cache[key] = {seen, nib}
                elif nib in seen or 0 in seen:
                    fresh = False
                else:
                    # Subset checks only while the set is small: past that an
                    # exact match still prunes, and the check stays cheap.
                    fresh = len(seen) > DOMINANCE_CHECKS or all(m & ~nib for m in seen)
                    if fresh:
                        seen.add(nib)
                if fresh:
                    explored += 1
                    push((e, state, low, rel, ib, urg))
                    state = new
                    low = nlow
                    rel = nrel
                    ib = nib
                    p = prv[e]
                    q = nxt[e]
                    nxt[p] = q
                    prv[q] = p
                    if r > 0:
                        p = prv[r]
                        q = nxt[r]
                        nxt[p] = q
                        prv[q] = p
                    if trace is not None:
                        trace.pushed(stack, state, nxt, match, opno)
                    x = nxt[0]
                    while match[x]:
                        x = nxt[x]
                    urg = owner[x]
                    if not urg:  # no return left: every op that returned is linearized
                        return Outcome(True, explored)
                    if reach is None or not _dead(
                        reach, state, nxt, match, owner, wants, sets, tail, look_returns
                    ):
                        e = urg
                        continue
                    # A dead configuration: backtrack out of it at once.
                elif not forced[e]:
                    e = nxt[0] if e == urg else nxt[e]
                    if e == urg:
                        e = nxt[e]
                    continue
                # A pure op that fits here is linearized first without loss
                # of generality (it changes no state, and nothing still
                # pending had to precede it); if that configuration was
                # already explored and failed, so does this one.
            else:
                e = nxt[0] if e == urg else nxt[e]
                if e == urg:
                    e = nxt[e]
                continue
        # Backtrack: pop the newest choice and try the next candidate after
        # it. A popped pure op was a forced move, not a choice: keep popping.
        while True:
            if not stack:
                best = None
                if trace is not None:
                    if not trace.recorded:  # failed before linearizing anything
                        trace.pushed(stack, state, nxt, match, opno)
                    best = trace.best()
                return Outcome(False, explored, best=best)
            e, state, low, rel, ib, urg = pop()
            r = match[e]
            if r > 0:
                p = prv[r]
                q = nxt[r]
                nxt[p] = r
                prv[q] = r
            p = prv[e]
            q = nxt[e]
            nxt[p] = e
            prv[q] = e
            if not forced[e]:
                break
        if trace is not None:
            trace.popped(len(stack))
        e = nxt[0] if e == urg else nxt[e]
        if e == urg:
            e = nxt[e]
        backtracks += 1
        if not backtracks & (CHECK_EVERY - 1):
            if deadline is not None and time.monotonic() > deadline:
                return Outcome("unknown", explored, reason="time limit reached")
            if max_states is not None and explored > max_states:
                return Outcome(
                    "unknown",
                    explored,
                    reason=f"explored more than {max_states} configurations (memory bound)",
                )


def _dead(
    reach: str,
    state: Any,
    nxt: list[int],
    match: list[int],
    owner: list[int],
    wants: list[Any],
    sets: list[Any],
    tail: int,
    left: int,
) -> bool:
    """Can no extension of this configuration linearize some read still open?

    Every op linearized before a read r was called before r returned (real
    time), so the state r sees is this configuration's state, or the state
    some op setting one (``sets``) called before r's return left, carried on
    by ops that set none: unchanged (``"eq"``: reads, a cas that failed) or
    extended (``"prefix"``: kv appends). If r's result is reachable from none
    of these, no order of the ops still open can linearize r, and r must be
    linearized (it returned): the configuration is dead, whatever the search
    would try next. The search would find that out too, but only once r's
    return came first in the list, after trying every way to order the ops
    before it; a slow append or write in a single-key history makes that
    exponential. Looking at the first ``left`` reads only (LOOK_RETURNS)
    keeps this cheap; skipping a read is never wrong, it only prunes less.
    """
    made: list[Any] = []
    x = nxt[0]
    while x != tail:
        if match[x]:  # a call: the state it may set is reachable from here on
            s = sets[x]
            if s is not _NO:
                made.append(s)
        else:
            v = wants[owner[x]]
            if v is not _NO:
                if reach == "eq":
                    if v != state and v not in made:
                        return True
                elif not _extends(state, v) and not any(_extends(m, v) for m in made):
                    return True
            left -= 1
            if not left:
                return False
        x = nxt[x]
    return False


def _extends(s: Any, v: Any) -> bool:
    """Could appends take state ``s`` to ``v``? (Not strings: say yes, prune nothing.)"""
    if type(s) is str and type(v) is str:
        return v.startswith(s)
    return True


class _Trace:
    """Keeps the deepest stack seen, copying only what changed since the last
    record (the part above the lowest point the stack fell to), so a long
    history costs linear, not quadratic, time to trace."""

    def __init__(self) -> None:
        self.order: list[int] = []
        self.states: list[Any] = []
        self.low_water = 0
        self.stuck: list[int] = []
        self.blocking = -1
        self.recorded = False

    def popped(self, depth: int) -> None:
        if depth < self.low_water:
            self.low_water = depth

    def pushed(
        self,
        stack: list[tuple[int, Any, int, int, int, int]],
        state: Any,
        nxt: list[int],
        match: list[int],
        opno: list[int],
    ) -> None:
        if self.recorded and len(stack) <= len(self.order):
            return
        lw = self.low_water
        del self.order[lw:]
        del self.states[lw:]
        self.order.extend(opno[s[0]] for s in stack[lw:])
        # states[i] is the state after order[i]: the state before the next one
        self.states.extend(s[1] for s in stack[lw + 1 :])
        self.states.append(state)
        self.low_water = len(stack)
        self.recorded = True
        self.stuck = []
        e = nxt[0]
        tail = len(match) - 1
        while e != tail and match[e]:
            self.stuck.append(opno[e])
            e = nxt[e]
        self.blocking = opno[e] if e != tail else -1

    def best(self) -> Best:
        return Best(
            order=list(self.order),
            states=list(self.states),
            stuck=self.stuck,
            blocking=self.blocking,
        )
