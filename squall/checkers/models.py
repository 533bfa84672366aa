"""Sequential specifications the linearizability search checks against.

A model is a small value: ``init`` (the state before any operation),
``step(state, input, output) -> (ok, new_state)`` and a few helpers. The
search in ``checkers.linearizable`` knows nothing about registers or
key-value stores; it only calls ``step``.

Conventions shared by every model here:

* an operation's *input* is ``(f, arg)`` after ``prepare`` normalised it
  (values made hashable: lists become tuples), so states and inputs can be
  cached in sets;
* its *output* is what the client observed: the value read, ``True`` for a
  write or cas that succeeded, ``False`` for a cas whose precondition failed,
  or ``UNKNOWN`` for an indeterminate (``info``) operation, whose output is
  never checked;
* every model is per key: ``partition_by_key`` is True, and ``step`` sees the
  state of one key only (P-compositionality, Herlihy & Wing): a keyed history
  is linearizable iff each key's sub-history is.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any


class _Unknown:
    """The output of an indeterminate operation: anything may have been returned."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __reduce__(self) -> str:
        # Pickles as the module-level name so the singleton survives a process pool.
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()
NO: Any = object()  # no state needed or set (Model.look_at)

Step = Callable[[Any, Any, Any], tuple[bool, Any]]


@dataclass(frozen=True)
class Model:
    """A sequential specification (see the module docstring for the conventions)."""

    name: str
    init: Hashable
    step: Step
    fs: frozenset[str]  # the operation names this model understands
    readonly: frozenset[str]  # ops with no effect: an indeterminate one can be dropped
    aliases: tuple[tuple[str, str], ...] = ()  # other names for the same op
    partition_by_key: bool = True
    # The compiled step that does what ``step`` does (squall_core: register,
    # cas-register, kv), so the compiled search may check this model; None
    # for a model only its Python ``step`` can run (every user's own).
    core: str | None = None
    # What the search's look-ahead (_lin_search._dead) may assume of the
    # ops that set no value of their own (see ``look_at``): "eq", they never
    # change the state (reads, a failed cas); "prefix", they only append to a
    # string (kv). None: nothing, the look-ahead is off (every user's model).
    look: str | None = None

    def look_at(self, inp: tuple[str, Any], output: Any) -> tuple[Any, Any]:
        """(the state this op must see, the state it may set), ``NO`` for none:
        a read's result; a write's, put's or successful cas's new value."""
        f, arg = inp
        if f in self.readonly:
            return (NO if output is UNKNOWN else output), NO
        if f in ("write", "put") or (f == "cas" and output is not False):
            return NO, (arg[1] if f == "cas" else arg)
        return NO, NO

    def canonical_f(self, f: str) -> str:
        """The model's name for ``f``; raises ValueError naming the known ones."""
        if f in self.fs:
            return f
        f = dict(self.aliases).get(f, f)
        if f not in self.fs:
            known = ", ".join(sorted(self.fs | {a for a, _ in self.aliases}))
            raise ValueError(
                f"operation f={f!r} is unknown to the {self.name} model; known: {known}"
            )
        return f

    def prepare(self, f: str, arg: Any) -> tuple[str, Any]:
        """Normalises an invocation into the hashable input ``step`` expects."""
        if f not in self.fs:
            f = self.canonical_f(f)
        if f == "cas":
            return f, _cas_arg(arg)
        return f, freeze(arg)

    def is_pure(self, inp: tuple[str, Any], output: Any) -> bool:
        """Does this op leave every state as it was? (The search linearizes such an
        op as soon as it fits, without trying alternatives.)"""
        if output is UNKNOWN:
            return False
        return inp[0] in self.readonly or (inp[0] == "cas" and output is False)

    def describe_op(self, inp: tuple[str, Any], output: Any) -> str:
        f, arg = inp
        if output is UNKNOWN:
            shown = "?"
        elif f in self.readonly:
            shown = repr(output)
        elif f == "cas":
            shown = "ok" if output else "failed"
        else:
            shown = "ok"
        if f in self.readonly:
            return f"{f}() -> {shown}"
        if f == "cas":
            return f"cas({arg[0]!r} -> {arg[1]!r}) -> {shown}"
        return f"{f}({arg!r}) -> {shown}"

    def describe_state(self, state: Any) -> str:
        return repr(state)


_SEQ = (list, tuple)  # a tuple, not list | tuple: the union is rebuilt on every call
_SCALARS = frozenset({int, str, float, bool, type(None)})


def freeze(value: Any) -> Hashable:
    """Makes a JSON/EDN value hashable (lists -> tuples, dicts -> sorted pairs)."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, _SEQ):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    return value


def _cas_arg(arg: Any) -> tuple[Hashable, Hashable]:
    """A cas argument as (from, to), from ``[from, to]`` or ``{"from", "to"}``."""
    if isinstance(arg, dict) and "from" in arg and "to" in arg:
        return freeze(arg["from"]), freeze(arg["to"])
    if isinstance(arg, _SEQ) and len(arg) == 2:
        return freeze(arg[0]), freeze(arg[1])
    raise ValueError(f'a cas value must be [from, to] or {{"from", "to"}}, got {arg!r}')


# --- register: read / write ------------------------------------------------


def register_step(state: Any, inp: tuple[str, Any], out: Any) -> tuple[bool, Any]:
    f, arg = inp
    if f == "write":
        return True, arg
    return out is UNKNOWN or out == state, state


# --- CAS register: read / write / cas (etcd-style) --------------------------


def cas_register_step(state: Any, inp: tuple[str, Any], out: Any) -> tuple[bool, Any]:
    f, arg = inp
    if f == "read":
        return out is UNKNOWN or out == state, state
    if f == "write":
        return True, arg
    frm, to = arg
    if out is UNKNOWN:
        # It may have happened: if it did, the precondition decided its effect.
        return True, (to if state == frm else state)
    if out:
        return state == frm, to
    # A cas that failed its precondition is an observation: the value was not `from`.
    return state != frm, state


# --- key-value: get / put / append (Porcupine's kv test model) ---------------


def kv_step(state: Any, inp: tuple[str, Any], out: Any) -> tuple[bool, Any]:
    f, arg = inp
    if f == "get":
        return out is UNKNOWN or out == state, state
    if f == "put":
        return True, arg
    return True, state + arg  # append


REGISTER = Model(
    name="register",
    core="register",
    init=None,
    step=register_step,
    fs=frozenset({"read", "write"}),
    readonly=frozenset({"read"}),
    look="eq",
)

CAS_REGISTER = Model(
    name="cas-register",
    core="cas-register",
    init=None,
    step=cas_register_step,
    fs=frozenset({"read", "write", "cas"}),
    readonly=frozenset({"read"}),
    look="eq",
)

KV = Model(
    name="kv",
    core="kv",
    init="",  # a missing key reads as the empty string, as in Porcupine's kv model
    step=kv_step,
    fs=frozenset({"get", "put", "append"}),
    readonly=frozenset({"get"}),
    look="prefix",
)

# The scheduler's task status: a CAS register per task whose transitions are
# written {from, to}; reads return the status, "create" sets the first one.
TASK_STATE = Model(
    name="task-state",
    core="cas-register",
    init=None,
    step=cas_register_step,
    fs=frozenset({"read", "write", "cas"}),
    readonly=frozenset({"read"}),
    aliases=(("transition", "cas"), ("create", "write"), ("set", "write")),
    look="eq",
)

MODELS: dict[str, Model] = {m.name: m for m in (REGISTER, CAS_REGISTER, KV, TASK_STATE)}


def get_model(name: str) -> Model:
    """The model called ``name`` (built in, a ``squall.models`` entry point, or
    ``module:attr``); raises ValueError listing the known ones."""
    if name in MODELS:
        return MODELS[name]
    from squall import registry

    try:
        found = registry.model(name)
    except registry.UnknownName:
        known = sorted(set(MODELS) | set(registry.names("model")))
        raise ValueError(f"model {name!r} is unknown; known: {', '.join(known)}") from None
    if not isinstance(found, Model):
        raise ValueError(f"model {name!r} is a {type(found).__name__}, not a squall Model")
    return found
