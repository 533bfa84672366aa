"""Which search checks a partition: the compiled core or the Python one.

The compiled core (``squall_core``, Rust, built from ``squall_core/`` by
``scripts/setup``) runs the same search as ``_lin_search`` move for move,
for the built-in models only: a model declares the compiled step it is
through ``Model.core``. A user's own model, a model whose values the core
cannot represent exactly, or a machine where the core was not built, uses
the Python search, which stays the reference the compiled one is tested
against (tests/checkers/test_lin_cores.py).

The core sees interned values. Every value of a partition (the initial
state, written values, cas operands, read results) is given a small integer
by a Python dict, so two values share an id exactly when Python's ``==``
(and hash) call them equal, which is all the built-in models ask of a value.
The kv model also concatenates: it needs every value to be a string, and the
core keeps its own table of the strings appends make.

Two roads lead to the compiled search. ``check`` first offers the whole
history to ``prepare``: the core pairs, converts, splits and interns it in
one pass (squall_core/src/prepare_ops.rs), and Operations are built only
for the partitions that need them (a counterexample's, a pool's). A history
that is not plain (a bool or float value, a named process, a malformed op)
is declined, and the Python road (``linearizable.to_operations``, then
``search_columns`` per partition) takes it, errors and all;
tests/checkers/test_lin_prepare.py holds the two roads to the same result.
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from squall.checkers._lin_search import Best, Outcome, search
from squall.checkers.models import UNKNOWN, Model

_compiled: Any
try:  # a module with no stubs: Any, and the calls below are the typed seam
    _compiled = importlib.import_module("squall_core")
except ImportError:  # not built here (no Rust toolchain): the Python search does it all
    _compiled = None
if not hasattr(_compiled, "search"):
    # Run from the repository's root without the build installed, ``import
    # squall_core`` finds the crate's source folder (a namespace package).
    _compiled = None

CORES = ("auto", "rust", "python")
# The Python search cannot weigh its cache, so the byte budget becomes a count
# there: ~250 bytes a configuration (a 3-tuple key, its ints and state, a
# dict slot) was measured as 4 M configurations to 1 GB.
PY_BYTES_PER_STATE = 256
_OPS = {"read": 0, "get": 0, "write": 1, "put": 1, "cas": 2, "append": 3}
_NONE = 2**32 - 1  # the core's UNKNOWN


class Limits(NamedTuple):
    """What bounds one check: the clock, the memory, and which core runs it.
    (A named tuple for the reason Outcome is one.)"""

    deadline: float | None = None  # time.monotonic() past which the answer is unknown
    max_bytes: int | None = None  # the cache's memory budget
    max_states: int | None = None  # a configuration count, if the caller asked for one
    core: str = "auto"


def available() -> bool:
    """Whether the compiled core is installed in this interpreter."""
    return _compiled is not None


def check_core(core: str) -> str:
    """``core`` if it can run here; ValueError naming the fix otherwise."""
    if core not in CORES:
        raise ValueError(f"core {core!r} is unknown; known: {', '.join(CORES)}")
    if core == "rust" and _compiled is None:
        raise ValueError(
            "the compiled core (squall_core) is not installed; run ./scripts/setup "
            "(it needs cargo), or use core 'python'"
        )
    return core


def search_columns(
    model: Model,
    columns: Sequence[Sequence[Any]],
    limits: Limits,
    track: bool = False,
    look: bool = True,
) -> Outcome:
    """One partition's outcome (``columns``: inputs, outputs, calls, returns, pure).
    ``look=False`` turns the search's look-ahead off (see ``linearizable``'s
    counterexample run for why)."""
    if limits.core != "python" and _compiled is not None and model.core is not None:
        encoded = _encode(model, columns[0], columns[1])
        if encoded is not None:
            return _run_compiled(model, encoded, columns, limits, track, look)
    if limits.core == "rust":
        raise ValueError(
            f"the compiled core cannot check model {model.name!r} on this history "
            "(a user's model, or values it cannot represent); use core 'auto'"
        )
    max_states = limits.max_states
    if max_states is None and limits.max_bytes is not None:
        max_states = limits.max_bytes // PY_BYTES_PER_STATE
    inputs, outputs, calls, returns, pure = columns
    looking = None
    if look and model.look is not None:
        seen = [model.look_at(i, o) for i, o in zip(inputs, outputs, strict=True)]
        looking = (model.look, [w for w, _ in seen], [s for _, s in seen])
    return search(
        model.init,
        model.step,
        inputs,
        outputs,
        calls,
        returns,
        pure,
        deadline=limits.deadline,
        max_states=max_states,
        track=track,
        look=looking,
    )


Encoded = tuple[list[int], list[int], list[int], list[int], list[Any]]


def _encode(model: Model, inputs: Sequence[Any], outputs: Sequence[Any]) -> Encoded | None:
    """(op codes, a ids, b ids, output ids, the table of values by id), or None
    when the core cannot represent these values exactly."""
    strings_only = model.core == "kv"
    ids: dict[Any, int] = {}
    table: list[Any] = []

    def intern(v: Any) -> int:
        found = ids.get(v)
        if found is not None:
            return found
        # NaN is not equal to itself, and a dict would call it equal to itself.
        if (strings_only and type(v) is not str) or (type(v) is float and math.isnan(v)):
            raise _Unrepresentable
        ids[v] = len(table)
        table.append(v)
        return len(table) - 1

    fs: list[int] = []
    a: list[int] = []
    b: list[int] = []
    out: list[int] = []
    try:
        intern(model.init)
        for (f, arg), o in zip(inputs, outputs, strict=True):
            code = _OPS[f]
            fs.append(code)
            if code == 2:
                a.append(intern(arg[0]))
                b.append(intern(arg[1]))
            else:
                a.append(0 if code == 0 else intern(arg))
                b.append(0)
            if o is UNKNOWN:
                out.append(_NONE)
            elif code == 0:
                out.append(intern(o))
            else:
                out.append(1 if o else 0)
    except (_Unrepresentable, KeyError, TypeError):
        return None
    return fs, a, b, out, table


class _Unrepresentable(Exception):
    pass


def _run_compiled(
    model: Model,
    encoded: Encoded,
    columns: Sequence[Sequence[Any]],
    limits: Limits,
    track: bool,
    look: bool,
) -> Outcome:
    assert _compiled is not None and model.core is not None
    fs, a, b, out, table = encoded
    left = None if limits.deadline is None else limits.deadline - time.monotonic()
    answer = _compiled.search(
        model.core,
        0,
        fs,
        a,
        b,
        out,
        columns[2],
        columns[3],
        columns[4],
        table if model.core == "kv" else [],
        time_limit=left,
        max_states=limits.max_states,
        max_bytes=limits.max_bytes,
        track=track,
        look=look,
    )
    return _outcome(answer, table)


def _outcome(answer: tuple[Any, ...], table: Sequence[Any]) -> Outcome:
    """The compiled search's answer as an Outcome (``table``: the values by id)."""
    valid, explored, reason, peak, best, made = answer
    found = None
    if best is not None:
        spelled = dict(made)  # the kv strings the search made that the trace shows, by id
        order, states, stuck, blocking = best
        shown = [spelled[s] if s >= len(table) else table[s] for s in states]
        found = Best(order=order, states=shown, stuck=stuck, blocking=blocking)
    verdict: bool | str = True if valid == 1 else False if valid == 0 else "unknown"
    return Outcome(verdict, explored, reason=reason, best=found, peak_bytes=peak, core="rust")


# --- the compiled road from a whole history ----------------------------------


def prepare(model: Model, history: Sequence[Any], keyed: bool | None) -> Any:
    """The history paired, converted, split per key and interned by the
    compiled core in one pass (squall_core/src/prepare_ops.rs), or None when
    the Python road must take it: no core here, a user's model, or a history
    that is not plain (prepare_ops.rs says which are). The Python conversion
    cost three times the search it fed on a typical etcd log."""
    if _compiled is None or model.core is None or not hasattr(_compiled, "prepare"):
        return None
    if not isinstance(history, list | tuple):
        return None  # walked twice if the Python road must take it
    return _compiled.prepare(model.core, _codes(model), history, keyed)


# By id, the model kept beside its codes so the id cannot be reused: hashing
# a Model (a dataclass of nine fields) cost more than a small search.
_CODES: dict[int, tuple[Model, dict[str, int]]] = {}


def _codes(model: Model) -> dict[str, int]:
    """Each operation name ``model`` accepts (its aliases too) -> the core's op code."""
    got = _CODES.get(id(model))
    if got is None or got[0] is not model:
        names = set(model.fs) | {a for a, _ in model.aliases}
        canon = {f: model.canonical_f(f) for f in names}
        got = _CODES[id(model)] = (model, {f: _OPS[c] for f, c in canon.items() if c in _OPS})
    return got[1]


def search_prepared(
    prepared: Any, i: int, limits: Limits, track: bool = False, look: bool = True
) -> Outcome:
    """search_columns for partition ``i`` of a ``prepare``d history."""
    left = None if limits.deadline is None else limits.deadline - time.monotonic()
    answer = prepared.search(
        i,
        time_limit=left,
        max_states=limits.max_states,
        max_bytes=limits.max_bytes,
        track=track,
        look=look,
    )
    return _outcome(answer, prepared.values(i) if answer[4] is not None else ())
