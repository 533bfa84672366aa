"""Linearizability: is there one order of the operations, consistent with
real time, in which the model accepts every one of them?

``check(model, history)`` answers for a whole history: client operations are
paired (invoke with completion), split per key (P-compositionality) and each
key is searched independently by ``checkers._lin_search`` (Wing–Gong with
Lowe's cache, as Porcupine does), in a process pool when that pays.

How each completion type counts (docs/contracts.md §1):

* ``ok``: it happened, its output is checked;
* ``fail``: it did not happen, so it is left out — except a cas that failed
  its precondition (``error: precondition_failed``), which *observed* that
  the value was not ``from`` and is checked as such;
* ``info`` (or no completion): indeterminate. It may take effect at any point
  after its invoke, or never, and its output is not checked: it has no
  return event, so the search may place it anywhere after its call or leave
  it out. A read-only op that is indeterminate says nothing and is dropped.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Hashable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

from checkers._lin_search import Outcome, search
from checkers.base import CheckContext, Checker
from checkers.models import UNKNOWN, Model, get_model
from squall.history import FAIL, INFO, INVOKE, OK, HistoryError, Op, Process

INF = math.inf
# Below this much sequential work, a process pool costs more than it saves.
PARALLEL_AFTER_S = 0.3
PARALLEL_MIN_OPS = 2000
DEFAULT_MAX_STATES = 4_000_000  # ~1 GB of cached configurations per partition


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation as the search sees it."""

    process: Process
    key: Hashable
    input: tuple[str, Any]
    output: Any  # UNKNOWN when indeterminate
    call: float  # position of the invoke in the history
    ret: float  # position of the completion, INF if indeterminate
    invoke: Op
    complete: Op | None


def where(op: Op) -> str:
    line = op.extra.get("line")
    return f"line {line}" if line is not None else f"op {op.index}"


def is_keyed(history: Sequence[Op]) -> bool:
    """Jepsen ``independent`` values are [key, v]; a cas is [key, [from, to]]."""
    found = False
    for op in history:
        if op.is_nemesis or op.type != INVOKE:
            continue
        v = op.value
        if not isinstance(v, list | tuple) or len(v) != 2:
            return False
        if op.f in ("cas", "transition") and not isinstance(v[1], list | tuple | dict):
            return False
        found = True
    return found


def to_operations(model: Model, history: Sequence[Op], keyed: bool | None = None) -> list[Operation]:
    """Pairs invokes with completions and turns them into the model's inputs.

    Raises HistoryError naming the line of a completion without an invoke, a
    second invoke on a busy process, an unknown ``f`` or a malformed value.
    """
    if keyed is None:
        keyed = is_keyed(history)
    open_: dict[Process, tuple[int, Op]] = {}
    pairs: list[tuple[int, Op, int, Op | None]] = []
    for pos, op in enumerate(history):
        if op.is_nemesis:
            continue
        if op.type == INVOKE:
            if op.process in open_:
                raise HistoryError(
                    f"{where(op)}: process {op.process} invoked {op.f!r} while its op at "
                    f"{where(open_[op.process][1])} has not completed; a process runs one op at a "
                    "time (a process whose op ended info must take a fresh id)"
                )
            open_[op.process] = (pos, op)
            continue
        if op.process not in open_:
            raise HistoryError(
                f"{where(op)}: {op.type} {op.f!r} on process {op.process} completes no "
                "invocation (completion without an invoke); is the history cut at the start?"
            )
        ipos, inv = open_.pop(op.process)
        pairs.append((ipos, inv, pos, op))
    pairs.extend((ipos, inv, INF, None) for ipos, inv in open_.values())  # type: ignore[misc]
    pairs.sort(key=lambda p: p[0])
    out: list[Operation] = []
    for ipos, inv, cpos, comp in pairs:
        operation = _operation(model, keyed, ipos, inv, cpos, comp)
        if operation is not None:
            out.append(operation)
    return out


def _split(op: Op, keyed: bool) -> tuple[Hashable, Any]:
    if not keyed:
        return None, op.value
    v = op.value
    if not isinstance(v, list | tuple) or len(v) != 2:
        raise HistoryError(f"{where(op)}: a keyed op's value must be [key, v], got {v!r}")
    key = tuple(v[0]) if isinstance(v[0], list) else v[0]
    return key, v[1]


def _operation(
    model: Model, keyed: bool, ipos: int, inv: Op, cpos: float, comp: Op | None
) -> Operation | None:
    key, arg = _split(inv, keyed)
    try:
        f = model.canonical_f(inv.f)
        inp = model.prepare(f, None if f in model.readonly else arg)
    except ValueError as exc:
        raise HistoryError(f"{where(inv)}: {exc}") from None
    if comp is not None and comp.f != inv.f:
        raise HistoryError(
            f"{where(comp)}: completion f={comp.f!r} does not match its invoke's f={inv.f!r} "
            f"at {where(inv)}"
        )
    kind = comp.type if comp is not None else INFO
    if kind == FAIL:
        if f == "cas" and comp is not None and comp.error == "precondition_failed":
            return Operation(inv.process, key, inp, False, ipos, cpos, inv, comp)
        return None
    if kind == INFO:
        if f in model.readonly:
            return None
        return Operation(inv.process, key, inp, UNKNOWN, ipos, INF, inv, comp)
    assert kind == OK and comp is not None
    if f in model.readonly:
        ckey, got = _split(comp, keyed)
        output = model.prepare(f, got)[1]
    else:
        output = True
    return Operation(inv.process, key, inp, output, ipos, cpos, inv, comp)


def partition(model: Model, operations: Sequence[Operation]) -> dict[Hashable, list[Operation]]:
    if not model.partition_by_key:
        return {None: list(operations)}
    parts: dict[Hashable, list[Operation]] = {}
    for o in operations:
        parts.setdefault(o.key, []).append(o)
    return parts


def check_partition(
    model: Model, ops: Sequence[Operation], deadline: float | None, max_states: int | None,
    track: bool = False,
) -> Outcome:
    return search(model.init, model.step, *_columns(model, ops),
                  deadline=deadline, max_states=max_states, track=track)


def _columns(model: Model, ops: Sequence[Operation]) -> tuple[list[Any], ...]:
    """The search's inputs: plain lists are cheap to index and to pickle."""
    return (
        [o.input for o in ops], [o.output for o in ops], [o.call for o in ops],
        [o.ret for o in ops], [model.is_pure(o.input, o.output) for o in ops],
    )


def _pool_job(model_name: str, key: Hashable, args: tuple[Any, ...]) -> tuple[Hashable, Outcome]:
    model = get_model(model_name)
    columns, deadline, max_states = args
    return key, search(model.init, model.step, *columns, deadline=deadline, max_states=max_states)


def _run_parallel(
    model: Model, parts: list[tuple[Hashable, list[Operation]]], deadline: float | None,
    max_states: int | None, workers: int,
) -> dict[Hashable, Outcome]:
    """Checks partitions in worker processes; the first invalid one cancels the rest."""
    results: dict[Hashable, Outcome] = {}
    ctx = get_context("forkserver")  # never fork a process that may run threads
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    try:
        pending = {
            pool.submit(
                _pool_job, model.name, key,
                (_columns(model, ops), deadline, max_states),
            )
            for key, ops in parts
        }
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                key, outcome = fut.result()
                results[key] = outcome
                if outcome.valid is False:
                    return results
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return results


def check_operations(
    model: Model,
    operations: Sequence[Operation],
    time_limit: float | None = None,
    max_states: int | None = DEFAULT_MAX_STATES,
    parallel: bool | None = None,
) -> dict[str, Any]:
    """The verdict for already-paired operations, with a counterexample if invalid.

    ``parallel``: None decides by itself (a pool only when the sequential
    work so far took long and much remains), True/False force it.
    """
    t0 = time.monotonic()
    deadline = None if time_limit is None else t0 + time_limit
    # Small partitions first: cheap ones often hold the violation, and what
    # remains when the pool takes over is the expensive part.
    parts = sorted(partition(model, operations).items(), key=lambda kv: len(kv[1]))
    workers = min(os.cpu_count() or 1, 8)
    results: dict[Hashable, Outcome] = {}
    remaining = sum(len(ops) for _, ops in parts)
    for i, (key, ops) in enumerate(parts):
        left = parts[i:]
        if _use_pool(parallel, time.monotonic() - t0, remaining, len(left), workers):
            results.update(_run_parallel(model, left, deadline, max_states, workers))
            break
        outcome = check_partition(model, ops, deadline, max_states)
        results[key] = outcome
        remaining -= len(ops)
        if outcome.valid is False:
            break
    return _verdict(model, dict(parts), results, deadline, max_states, time.monotonic() - t0)


def _use_pool(parallel: bool | None, elapsed: float, remaining: int, left: int, workers: int) -> bool:
    if parallel is False or workers < 2 or left < 2:
        return False
    if parallel:
        return True
    return elapsed > PARALLEL_AFTER_S and remaining >= PARALLEL_MIN_OPS


def _verdict(
    model: Model, parts: dict[Hashable, list[Operation]], results: dict[Hashable, Outcome],
    deadline: float | None, max_states: int | None, seconds: float,
) -> dict[str, Any]:
    from checkers._lin_report import counterexample  # only built when needed

    res: dict[str, Any] = {
        "valid": True,
        "model": model.name,
        "ops": sum(len(v) for v in parts.values()),
        "partitions": len(parts),
        "partitions_checked": len(results),
        "states_explored": sum(o.states for o in results.values()),
        "search_seconds": round(seconds, 4),
    }
    failed = [k for k, o in results.items() if o.valid is False]
    unknown = [k for k, o in results.items() if o.valid == "unknown"]
    if failed:
        key = failed[0]
        res["valid"] = False
        res["failed_key"] = _jsonable(key)
        # Re-run the failing partition with tracking on: it is deterministic,
        # and valid partitions never pay for recording the deepest prefix.
        again = check_partition(model, parts[key], None, max_states, track=True)
        res["counterexample"] = counterexample(model, key, parts[key], again.best)
    elif unknown or len(results) < len(parts):
        res["valid"] = "unknown"
        reasons = sorted({o.reason or "" for o in results.values() if o.valid == "unknown"})
        res["unknown_reason"] = "; ".join(r for r in reasons if r) or "time limit reached"
        res["unknown_keys"] = [_jsonable(k) for k in unknown[:20]]
    return res


def _jsonable(key: Hashable) -> Any:
    if key is None or isinstance(key, str | int | float | bool):
        return key
    if isinstance(key, tuple):
        return [_jsonable(k) for k in key]
    return repr(key)


def check(
    model: Model | str,
    history: Sequence[Op],
    time_limit: float | None = None,
    keyed: bool | None = None,
    max_states: int | None = DEFAULT_MAX_STATES,
    parallel: bool | None = None,
) -> dict[str, Any]:
    """Checks a whole history (nemesis ops are ignored) against ``model``."""
    m = get_model(model) if isinstance(model, str) else model
    operations = to_operations(m, history, keyed)
    return check_operations(m, operations, time_limit, max_states, parallel)


def linearizable_checker(
    model: Model | str, time_limit: float | None = 60.0, keyed: bool | None = None
) -> Checker:
    """A ``checkers.base`` checker: reads ``ctx.history`` and, when it is not
    linearizable and ``ctx.run_dir`` is set, writes ``linear.html`` there."""
    m = get_model(model) if isinstance(model, str) else model

    def check_ctx(ctx: CheckContext) -> dict[str, Any]:
        res = check(m, ctx.history, time_limit=time_limit, keyed=keyed)
        if res["valid"] is False and ctx.run_dir is not None:
            from checkers._lin_report import fault_bands
            from checkers.linear_html import write_html

            path = ctx.run_dir / "linear.html"
            write_html(path, res, fault_bands(ctx.history))
            res["html"] = str(path)
        return res

    return check_ctx
