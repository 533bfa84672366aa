"""The counterexample of an invalid partition, as JSON-ready data.

It is what a person needs to see the violation: the key, how far the search
got (the longest linearizable prefix it found, and the model state there),
the operations that could not be linearized after it, and a *window* of the
partition around that point — never the whole history, so a 100k-op run
still gives a small result and a page a browser opens.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

from squall.checkers._lin_search import Best
from squall.checkers.models import UNKNOWN, Model

if TYPE_CHECKING:
    from squall.checkers.linearizable import Operation

PREFIX_SHOWN = 12  # linearized ops shown before the failing point
WINDOW_MAX_OPS = 300


def as_json(v: Any) -> Any:
    if v is UNKNOWN:
        return "?"
    if isinstance(v, tuple):
        return [as_json(x) for x in v]
    if v is None or isinstance(v, str | int | float | bool):
        return v
    return repr(v)


def op_json(model: Model, o: Operation) -> dict[str, Any]:
    comp = o.complete
    return {
        "process": o.process,
        "f": o.input[0],
        "input": as_json(o.input[1]),
        "output": as_json(o.output),
        "type": comp.type if comp is not None else "info",
        "call": o.call,
        "return": None if math.isinf(o.ret) else o.ret,
        "invoke_index": o.invoke.index,
        "line": o.invoke.extra.get("line"),
        "time": o.invoke.time,
        "end_time": comp.time if comp is not None else None,
        # The node that answered (or was tried last): a stale read names its server.
        "node": (comp.node if comp is not None and comp.node else o.invoke.node),
        "desc": model.describe_op(o.input, o.output),
    }


def counterexample(
    model: Model,
    key: Hashable,
    ops: Sequence[Operation],
    best: Best | None,
    spans: tuple[Sequence[float], Sequence[float]],
) -> dict[str, Any]:
    """``spans``: every op's (call, ret), apart from ``ops``, which may build
    each op only as it is asked for (most of a partition lies outside the
    window shown)."""
    if best is None:
        return {"key": as_json(key), "note": "the search did not record a prefix"}
    calls, rets = spans
    order, states = best.order, best.states
    state = states[-1] if states else model.init
    rank = {opno: i for i, opno in enumerate(order)}
    # An indeterminate op may always be left out, so it is never what blocks.
    stuck = [i for i in best.stuck if not math.isinf(rets[i])]
    focus = order[-PREFIX_SHOWN:] + stuck
    lo = min((calls[i] for i in focus), default=0)
    finite = [rets[i] for i in focus if not math.isinf(rets[i])]
    hi = max(finite) if finite else max(calls[i] for i in focus)
    window = [i for i, (c, r) in enumerate(zip(calls, rets, strict=True)) if c <= hi and r >= lo][
        :WINDOW_MAX_OPS
    ]
    # Most ops shown appear twice (the prefix's tail lies in the window):
    # each is described once, and every place it appears gets its own copy.
    described: dict[int, dict[str, Any]] = {}

    def shown(i: int) -> dict[str, Any]:
        d = described.get(i)
        if d is None:
            d = described[i] = op_json(model, ops[i])
        return dict(d)

    window_ops = []
    for i in window:
        d = shown(i)
        d["linearized_at"] = rank.get(i)
        d["state_after"] = model.describe_state(states[rank[i]]) if i in rank else None
        if i in rank:
            d["state_before"] = model.describe_state(
                states[rank[i] - 1] if rank[i] > 0 else model.init
            )
        else:  # it could not follow the prefix: it met the state the prefix left
            d["state_before"] = model.describe_state(state)
        d["stuck"] = i in stuck
        d["blocking"] = i == best.blocking
        window_ops.append(d)
    return {
        "key": as_json(key),
        "prefix_length": len(order),
        "partition_ops": len(ops),
        "prefix_tail": [
            {**shown(i), "state_after": model.describe_state(states[rank[i]])}
            for i in order[-PREFIX_SHOWN:]
        ],
        "state": as_json(state),
        "state_desc": model.describe_state(state),
        "unlinearizable": [shown(i) for i in stuck],
        "blocking": shown(best.blocking) if best.blocking >= 0 else None,
        "window": [lo, hi],
        "window_ops": window_ops,
    }
