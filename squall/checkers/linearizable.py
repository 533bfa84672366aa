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

import functools
import json
import math
import os
import time
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, NamedTuple, overload

from squall.checkers._lin_core import (
    Limits,
    check_core,
    prepare,
    search_columns,
    search_prepared,
)
from squall.checkers._lin_pool import picklable, run_parallel
from squall.checkers._lin_search import Outcome
from squall.checkers.base import CheckContext, Checker
from squall.checkers.models import UNKNOWN, Model, get_model
from squall.history import FAIL, INFO, INVOKE, NEMESIS, OK, HistoryError, Op, Process

INF = math.inf
_SEQ = (list, tuple)  # a tuple, not list | tuple: the union is rebuilt on every call
# A process pool costs ~0.3 s to start plus the pickling of the partitions,
# and on 2 cores saves at most half the search: it pays only when the search
# still ahead is expected to take longer than this (measured: a 0.7 s
# many-key check got slower with it). Checked once the search ran a while.
PARALLEL_AFTER_S = 0.3
POOL_PAYS_S = 2.0
# The cache's memory budget per partition. On exhaustion the answer is
# unknown, with the reason: a shared CI machine must not be driven to swap.
DEFAULT_MAX_BYTES = 1 << 30
# The counterexample's re-run without the look-ahead may explore at least
# this many configurations (tens of ms in the compiled core) before the
# look-ahead's own prefix is used instead (see ``check``).
PLAIN_RERUN_STATES = 100_000


class Operation(NamedTuple):
    """One client operation as the search sees it.

    A named tuple, not a frozen dataclass: one is built per operation of every
    history checked, and a frozen dataclass's __init__ (a setattr per field)
    cost more than the compiled search of a small history."""

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
        if op.type != INVOKE or op.process == NEMESIS:
            continue
        v = op.value
        if not isinstance(v, _SEQ) or len(v) != 2:
            return False
        if op.f in ("cas", "transition") and not isinstance(v[1], (list, tuple, dict)):
            return False
        found = True
    return found


def to_operations(
    model: Model, history: Sequence[Op], keyed: bool | None = None
) -> list[Operation]:
    """Pairs invokes with completions and turns them into the model's inputs.

    Raises HistoryError naming the line of a completion without an invoke, a
    second invoke on a busy process, an unknown ``f`` or a malformed value.
    """
    if keyed is None:
        keyed = is_keyed(history)
    open_: dict[Process, int] = {}
    # One slot per invoke, in invoke order, filled by its completion: the
    # operations come out sorted by call time without a sort.
    slots: list[list[Any]] = []
    for pos, op in enumerate(history):
        proc = op.process
        if proc == NEMESIS:
            continue
        if op.type == INVOKE:
            if proc in open_:
                raise HistoryError(
                    f"{where(op)}: process {proc} invoked {op.f!r} while its op at "
                    f"{where(slots[open_[proc]][1])} has not completed; a process runs one op at a "
                    "time (a process whose op ended info must take a fresh id)"
                )
            open_[proc] = len(slots)
            slots.append([pos, op, INF, None])
            continue
        at = open_.pop(proc, None)
        if at is None:
            raise HistoryError(
                f"{where(op)}: {op.type} {op.f!r} on process {proc} completes no "
                "invocation (completion without an invoke); is the history cut at the start?"
            )
        slot = slots[at]
        slot[2] = pos
        slot[3] = op
    convert = _Converter(model, keyed)
    out = [convert(*slot) for slot in slots]
    return [o for o in out if o is not None]


class _Converter:
    """Turns one (invoke, completion) pair into an Operation, caching what
    depends only on ``f`` (a 100k-op history has a handful of distinct fs)."""

    def __init__(self, model: Model, keyed: bool) -> None:
        self.model = model
        self.keyed = keyed
        self.fs: dict[str, str] = {}

    def split(self, op: Op) -> tuple[Hashable, Any]:
        v = op.value
        if not self.keyed:
            return None, v
        if not isinstance(v, _SEQ) or len(v) != 2:
            raise HistoryError(f"{where(op)}: a keyed op's value must be [key, v], got {v!r}")
        return _hashable(v[0]), v[1]

    def __call__(self, ipos: int, inv: Op, cpos: float, comp: Op | None) -> Operation | None:
        model = self.model
        v = inv.value
        # split(), inlined for the common case: this runs once per operation.
        if not self.keyed:
            key, arg = None, v
        elif type(v) is list and len(v) == 2 and type(v[0]) in _PLAIN_KEYS:
            key, arg = v
        else:
            key, arg = self.split(inv)
        try:
            f = self.fs.get(inv.f) or self.fs.setdefault(inv.f, model.canonical_f(inv.f))
            readonly = f in model.readonly
            inp = (f, None) if readonly else model.prepare(f, arg)
        except ValueError as exc:
            raise HistoryError(f"{where(inv)}: {exc}") from None
        if comp is None:
            kind = INFO
        else:
            kind = comp.type
            if comp.f != inv.f:
                raise HistoryError(
                    f"{where(comp)}: completion f={comp.f!r} does not match its invoke's "
                    f"f={inv.f!r} at {where(inv)}"
                )
        if kind == OK:
            output = model.prepare(f, self.split(comp)[1])[1] if readonly else True  # type: ignore[arg-type]
            return Operation(inv.process, key, inp, output, ipos, cpos, inv, comp)
        if kind == FAIL:
            if f == "cas" and comp is not None and comp.error == "precondition_failed":
                return Operation(inv.process, key, inp, False, ipos, cpos, inv, comp)
            return None
        if readonly:  # an indeterminate read says nothing
            return None
        return Operation(inv.process, key, inp, UNKNOWN, ipos, INF, inv, comp)


_PLAIN_KEYS = frozenset({str, int})  # keys _hashable returns as they are


def _hashable(key: Any) -> Hashable:
    """A key as the partition's dict key: lists as tuples (Jepsen keys may be vectors),
    and anything else unhashable (a map) as its canonical JSON, so equal keys meet."""
    if isinstance(key, list):
        return tuple(_hashable(k) for k in key)
    if isinstance(key, dict):
        return json.dumps(key, sort_keys=True, default=str)
    return key  # type: ignore[no-any-return]


def partition(model: Model, operations: Sequence[Operation]) -> dict[Hashable, list[Operation]]:
    if not model.partition_by_key:
        return {None: list(operations)}
    parts: dict[Hashable, list[Operation]] = {}
    for o in operations:
        parts.setdefault(o.key, []).append(o)
    return parts


def check_partition(
    model: Model,
    ops: Sequence[Operation],
    limits: Limits,
    track: bool = False,
    look: bool = True,
) -> Outcome:
    return search_columns(model, _columns(model, ops), limits, track, look)


Columns = tuple[list[Any], list[Any], list[float], list[float], list[bool]]


def _columns(model: Model, ops: Sequence[Operation]) -> Columns:
    """The search's inputs: plain lists are cheap to index and to pickle."""
    return (
        [o.input for o in ops],
        [o.output for o in ops],
        [o.call for o in ops],
        [o.ret for o in ops],
        [model.is_pure(o.input, o.output) for o in ops],
    )


def _run_parallel(
    model: Model,
    parts: list[tuple[Hashable, list[Operation]]],
    limits: Limits,
    workers: int,
) -> dict[Hashable, Outcome]:
    """Partitions checked by worker processes; any a worker could not finish
    (it died) are checked here, so the verdict never depends on the pool."""
    # A model whose step is a lambda or closure cannot reach another process:
    # all its partitions are checked here, in order, below.
    results = (
        run_parallel(model, [(k, _columns(model, ops)) for k, ops in parts], workers, limits)
        if picklable(model)
        else {}
    )
    if any(o.valid is False for o in results.values()):
        return results
    for key, ops in parts:
        if key not in results:
            results[key] = check_partition(model, ops, limits)
            if results[key].valid is False:
                break
    return results


def check_operations(
    model: Model,
    operations: Sequence[Operation],
    time_limit: float | None = None,
    max_states: int | None = None,
    parallel: bool | None = None,
    *,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    core: str = "auto",
    explain: bool = True,
) -> dict[str, Any]:
    """The verdict for already-paired operations, with a counterexample if invalid
    (``explain=False``: the verdict and the failing key only, see ``check``).

    ``parallel``: None decides by itself (a pool only when the sequential
    work so far took long and much remains), True/False force it.
    ``max_bytes`` bounds each partition's cache (``max_states``, if given,
    its count of configurations too); ``core``: auto (the compiled search
    where it applies), rust (refuse otherwise) or python.
    """
    t0 = time.monotonic()
    limits = _limits(t0, time_limit, max_bytes, max_states, core)
    # Small partitions first: cheap ones often hold the violation, and what
    # remains when the pool takes over is the expensive part.
    parts = sorted(partition(model, operations).items(), key=lambda kv: len(kv[1]))
    return _check_parts(model, _OpParts(model, dict(parts)), limits, parallel, t0, explain)


def _limits(
    t0: float, time_limit: float | None, max_bytes: int | None, max_states: int | None, core: str
) -> Limits:
    deadline = None if time_limit is None else t0 + time_limit
    return Limits(
        deadline=deadline, max_bytes=max_bytes, max_states=max_states, core=check_core(core)
    )


def _check_parts(
    model: Model,
    parts: _OpParts | _PreparedParts,
    limits: Limits,
    parallel: bool | None,
    t0: float,
    explain: bool,
) -> dict[str, Any]:
    """The partitions searched in order (smallest first), in a process pool
    once that pays, until one is invalid or the time is up; then the verdict."""
    keys = parts.keys
    workers = _workers()
    results: dict[Hashable, Outcome] = {}
    total = remaining = sum(parts.sizes.values())
    for i, key in enumerate(keys):
        if _use_pool(
            parallel, time.monotonic() - t0, total - remaining, remaining, len(keys) - i, workers
        ):
            left = [(k, list(parts.ops(k))) for k in keys[i:]]
            results.update(_run_parallel(model, left, limits, workers))
            break
        if limits.deadline is not None and time.monotonic() > limits.deadline:
            break  # the partitions left are unchecked: the verdict is unknown
        outcome = parts.search(key, limits)
        results[key] = outcome
        remaining -= parts.sizes[key]
        if outcome.valid is False:
            break
    return _verdict(model, parts, results, limits, time.monotonic() - t0, explain)


class _OpParts:
    """The partitions ``_check_parts`` searches, as lists of Operations."""

    def __init__(self, model: Model, parts: dict[Hashable, list[Operation]]) -> None:
        self.model = model
        self.parts = parts
        self.keys = list(parts)
        self.sizes = {k: len(v) for k, v in parts.items()}

    def ops(self, key: Hashable) -> list[Operation]:
        return self.parts[key]

    def spans(self, key: Hashable) -> tuple[list[float], list[float]]:
        ops = self.parts[key]
        return [o.call for o in ops], [o.ret for o in ops]

    def search(
        self, key: Hashable, limits: Limits, track: bool = False, look: bool = True
    ) -> Outcome:
        return check_partition(self.model, self.parts[key], limits, track=track, look=look)


class _LazyOps(Sequence[Operation]):
    """One prepared partition's Operations, each built when first asked for:
    a counterexample shows a window of a few dozen ops of a partition that
    may hold thousands."""

    def __init__(self, model: Model, prepared: Any, i: int, history: Sequence[Op]) -> None:
        self.pairs: list[tuple[int, int]] = prepared.pairs(i)
        self.history = history
        self.convert = _Converter(model, prepared.keyed)
        self.built: dict[int, Operation] = {}

    def __len__(self) -> int:
        return len(self.pairs)

    @overload
    def __getitem__(self, j: int) -> Operation: ...
    @overload
    def __getitem__(self, j: slice) -> list[Operation]: ...
    def __getitem__(self, j: int | slice) -> Operation | list[Operation]:
        if isinstance(j, slice):
            return [self[n] for n in range(*j.indices(len(self)))]
        got = self.built.get(j)
        if got is None:
            ipos, cpos = self.pairs[j]
            h = self.history
            if cpos >= 0:
                o = self.convert(ipos, h[ipos], cpos, h[cpos])
            else:
                o = self.convert(ipos, h[ipos], INF, None)
            assert o is not None, "squall_core.prepare kept an op the Python road drops"
            got = self.built[j] = o
        return got


class _PreparedParts:
    """The partitions of a history the compiled core prepared (``prepare``):
    Operations are built only for the partitions that need them (a
    counterexample's, or the ones a process pool takes)."""

    def __init__(self, model: Model, prepared: Any, history: Sequence[Op]) -> None:
        self.model = model
        self.prepared = prepared
        self.history = history
        self.keys = prepared.keys()
        self.sizes = dict(zip(self.keys, prepared.sizes(), strict=True))
        self.at = {k: i for i, k in enumerate(self.keys)}

    def ops(self, key: Hashable) -> _LazyOps:
        return _LazyOps(self.model, self.prepared, self.at[key], self.history)

    def spans(self, key: Hashable) -> tuple[list[float], list[float]]:
        calls, rets = self.prepared.spans(self.at[key])
        return calls, [INF if r is None else r for r in rets]

    def search(
        self, key: Hashable, limits: Limits, track: bool = False, look: bool = True
    ) -> Outcome:
        return search_prepared(self.prepared, self.at[key], limits, track=track, look=look)


@functools.cache
def _workers() -> int:
    """Pool size. Asked once: os.cpu_count() reads /sys on every call, 0.14 ms,
    a sixth of checking a typical etcd log."""
    return min(os.cpu_count() or 1, 8)


def _use_pool(
    parallel: bool | None, elapsed: float, done: int, remaining: int, left: int, workers: int
) -> bool:
    if parallel is False or workers < 2 or left < 2:
        return False
    if parallel:
        return True
    if elapsed < PARALLEL_AFTER_S or done == 0:
        return False
    # Partitions run smallest first and search cost grows faster than size,
    # so this per-op extrapolation underestimates: the pool is never taken
    # for work it cannot win back.
    return elapsed / done * remaining > POOL_PAYS_S


def _verdict(
    model: Model,
    parts: _OpParts | _PreparedParts,
    results: dict[Hashable, Outcome],
    limits: Limits,
    seconds: float,
    explain: bool = True,
) -> dict[str, Any]:
    t_end = time.monotonic()
    res: dict[str, Any] = {
        "valid": True,
        "model": model.name,
        "ops": sum(parts.sizes.values()),
        "partitions": len(parts.sizes),
        "partitions_checked": len(results),
        "states_explored": sum(o.states for o in results.values()),
        "search_seconds": round(seconds, 4),
        "core": "+".join(sorted({o.core for o in results.values()})) or "none",
    }
    weighed = [o.peak_bytes for o in results.values() if o.peak_bytes is not None]
    if weighed:
        res["cache_peak_bytes"] = max(weighed)
    failed = [k for k, o in results.items() if o.valid is False]
    unknown = [k for k, o in results.items() if o.valid == "unknown"]
    if failed:
        from squall.checkers.counterexample import counterexample  # only built when needed

        key = failed[0]
        res["valid"] = False
        res["failed_key"] = _jsonable(key)
        if not explain:
            res["why"] = _why_invalid(key, {}, len(parts.sizes))
            return res
        # Re-run the failing partition with tracking on: it is deterministic,
        # and valid partitions never pay for recording the deepest prefix.
        # A deadline still applies (as long as the first search took, at
        # least); if it runs out, the verdict stands without a prefix.
        deadline = limits.deadline
        rerun_deadline = None if deadline is None else t_end + max(deadline - t_end, seconds, 1.0)
        # First without the look-ahead, bounded: a dead configuration is
        # abandoned as soon as some read further on cannot be explained, so
        # with it the deepest prefix stops short of where the history went
        # wrong (a stale read after 50 writes blames the 35th). The plain
        # search walks on to the read itself. Only if it cannot finish within
        # a few times the first search's work does the look-ahead's prefix do.
        most = max(PLAIN_RERUN_STATES, 4 * results[key].states)
        plain = limits._replace(deadline=rerun_deadline, max_states=most)
        again = parts.search(key, plain, track=True, look=False)
        if again.valid is not False:
            again = parts.search(key, limits._replace(deadline=rerun_deadline), track=True)
        res["counterexample"] = ce = counterexample(
            model, key, parts.ops(key), again.best, parts.spans(key)
        )
        res["why"] = _why_invalid(key, ce, len(parts.sizes))
    elif unknown or len(results) < len(parts.sizes):
        res["valid"] = "unknown"
        reasons = sorted({o.reason or "" for o in results.values() if o.valid == "unknown"})
        res["unknown_reason"] = "; ".join(r for r in reasons if r) or "time limit reached"
        res["unknown_keys"] = [_jsonable(k) for k in unknown[:20]]
        bound = (
            "memory budget (squall check --max-memory MIB; max_bytes in code)"
            if "memory" in res["unknown_reason"]
            else "time limit"
        )
        res["why"] = (
            f"linearizability undecided: {res['unknown_reason']} after {seconds:.1f}s with "
            f"{len(parts.sizes) - len(results) + len(unknown)} of {len(parts.sizes)} keys open; raise the "
            f"{bound}, or use more keys so each stays small"
        )
    return res


def _why_invalid(key: Hashable, ce: dict[str, Any], n_parts: int) -> str:
    """One sentence a person can act on (docs/contracts.md §5), in the shape
    checkers.junit uses for results that lack one."""
    head = (
        "linearizability failed"
        if key is None and n_parts == 1
        else f"linearizability failed on key {key}"
    )
    blocking = ce.get("blocking")
    if not blocking:
        return head
    tail = ce.get("prefix_tail") or []
    state = f" (the register held {ce['state_desc']})"
    if tail:
        return f"{head}: {blocking['desc']} cannot follow {tail[-1]['desc']}{state}"
    return f"{head}: no order explains {blocking['desc']}{state}"


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
    max_states: int | None = None,
    parallel: bool | None = None,
    *,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    core: str = "auto",
    resolution: Mapping[str, Any] | None = None,
    explain: bool = True,
) -> dict[str, Any]:
    """Checks a whole history (nemesis ops are ignored) against ``model``
    (``check_operations`` says what the limits and ``core`` mean).
    ``resolution``: what the system's log says of its request ids
    (squall.checkers.resolve), applied to the info ops before the search.
    ``explain=False`` answers an invalid history with its failing key but no
    counterexample (no re-run of the search that records the deepest
    prefix, no window of ops described): the verdict alone, as Porcupine's
    CheckEvents gives it, for callers that only count verdicts. On a small
    invalid log the counterexample is most of the check."""
    m = get_model(model) if isinstance(model, str) else model
    if resolution is None and core != "python":
        prepared = prepare(m, history, keyed)
        if prepared is not None:
            t0 = time.monotonic()
            limits = _limits(t0, time_limit, max_bytes, max_states, core)
            parts = _PreparedParts(m, prepared, history)
            return _check_parts(m, parts, limits, parallel, t0, explain)
    operations = to_operations(m, history, keyed)
    summary = None
    if resolution is not None:
        from squall.checkers.resolve import resolve

        operations, summary = resolve(operations, resolution)
    res = check_operations(
        m,
        operations,
        time_limit,
        max_states,
        parallel,
        max_bytes=max_bytes,
        core=core,
        explain=explain,
    )
    if summary is not None:
        from squall.checkers.resolve import describe

        # First after the verdict: the report's row shows the leading figures.
        res = {"valid": res["valid"], "resolved": describe(summary), **res, "resolution": summary}
    return res


def linearizable_checker(
    model: Model | str, time_limit: float | None = 60.0, keyed: bool | None = None
) -> Checker:
    """A ``checkers.base`` checker over ``ctx.history``. Its result is plain data
    (the counterexample included); the page is drawn by the report layer."""
    m = get_model(model) if isinstance(model, str) else model

    def check_ctx(ctx: CheckContext) -> dict[str, Any]:
        return check(m, ctx.history, time_limit=time_limit, keyed=keyed, resolution=ctx.resolution)

    return check_ctx
