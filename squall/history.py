"""The history: every operation of a run, in the order it was observed.

One JSON object a line (JSON Lines), Jepsen's shape::

    {"index": 0, "time": 1200, "process": 3, "type": "invoke", "f": "write",
     "value": ["k1", 4], "node": "n2"}

``time`` is nanoseconds since the test started (monotonic clock), ``type`` is
one of invoke/ok/fail/info. ``info`` means indeterminate: the operation may
have taken effect at any point after its invoke, or never. Nemesis operations
carry ``process: "nemesis"``.

Keyed workloads (register, kv) use Jepsen's ``independent`` convention: the
value is ``[key, v]``; a cas is ``[key, [from, to]]``; a read's invoke is
``[key, null]`` and its completion ``[key, what_was_read]``.

The writer flushes every line, so a crashed or interrupted run keeps what it
recorded up to the last complete line; the reader names the line of anything
it cannot use.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any

INVOKE = "invoke"
OK = "ok"
FAIL = "fail"
INFO = "info"
TYPES = (INVOKE, OK, FAIL, INFO)
NEMESIS = "nemesis"
# In a fault's start completion: seconds the fault had already been acting when
# the op completed (a kill waits for the container to exit); see fault_windows.
IN_EFFECT_FOR = "in_effect_for_s"

Process = int | str


class HistoryError(ValueError):
    """A history that cannot be used as it is; the message names the line."""


@dataclass(frozen=True, slots=True)
class Op:
    """One event of the history: an invocation or a completion."""

    process: Process
    type: str
    f: str
    value: Any = None
    time: int = 0
    index: int = -1
    node: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_invoke(self) -> bool:
        return self.type == INVOKE

    @property
    def is_nemesis(self) -> bool:
        return self.process == NEMESIS

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "time": self.time,
            "process": self.process,
            "type": self.type,
            "f": self.f,
            "value": self.value,
        }
        if self.node is not None:
            out["node"] = self.node
        if self.error is not None:
            out["error"] = self.error
        out.update(self.extra)
        return out

    def with_(self, **changes: Any) -> Op:
        return replace(self, **changes)


_KNOWN = {"index", "time", "process", "type", "f", "value", "node", "error"}


def _whole(obj: dict[str, Any], key: str, default: int, where: str) -> int:
    """An integer field; a finite float is rounded, anything else is refused naming it."""
    v = obj.get(key, default)
    finite = isinstance(v, int) or (isinstance(v, float) and math.isfinite(v))
    if isinstance(v, bool) or not finite:
        raise HistoryError(f"{where}: {key} must be an integer, got {str(v)[:40]!r}")
    return int(v)


def op_from_json(obj: Any, line: int = 0, source: str = "history") -> Op:
    """Builds an Op from one decoded JSON object, naming the line if it is unusable."""
    where = f"{source}:{line}" if line else source
    if not isinstance(obj, dict):
        raise HistoryError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for key in ("process", "type", "f"):
        if key not in obj:
            raise HistoryError(f"{where}: operation has no {key!r} field: {str(obj)[:200]}")
    if obj["type"] not in TYPES:
        raise HistoryError(
            f"{where}: type {str(obj['type'])[:40]!r} is not one of {', '.join(TYPES)}"
        )
    process = obj["process"]
    if not isinstance(process, int | str) or isinstance(process, bool):
        raise HistoryError(
            f'{where}: process must be an integer or "nemesis", got {str(process)[:40]!r}'
        )
    node = obj.get("node")
    if node is not None and not isinstance(node, str):
        raise HistoryError(f"{where}: node must be a string, got {str(node)[:40]!r}")
    error = obj.get("error")
    extra = {k: v for k, v in obj.items() if k not in _KNOWN}
    return Op(
        process=process,
        type=obj["type"],
        f=str(obj["f"]),
        value=obj.get("value"),
        time=_whole(obj, "time", 0, where),
        index=_whole(obj, "index", -1, where),
        node=node,
        error=None if error is None else str(error),
        extra=extra,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Damage:
    """A stretch of history.jsonl that holds no readable op: where, how long, and why.

    ``tail``: it runs to the end of the file, what a writer killed mid-line leaves
    (a cut-off object, a block of NUL bytes from a crash); everything before it is
    usable. Otherwise the line sits between ops: a damaged file, not a crash.
    """

    line: int
    offset: int  # byte offset of its first byte
    length: int  # bytes
    reason: str
    tail: bool

    def describe(self, source: str) -> str:
        if self.tail:
            return (
                f"{source}: its last {self.length} bytes, from line {self.line} (byte "
                f"{self.offset}), are damaged ({self.reason}): the ops before them were read"
            )
        return f"{source}:{self.line}: damaged line of {self.length} bytes ({self.reason}), skipped"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class HistoryRead:
    """What reading a history gave: its ops, and every damaged stretch passed over."""

    ops: list[Op]
    damage: tuple[Damage, ...] = ()
    source: str = "history"

    @property
    def skipped(self) -> tuple[Damage, ...]:
        """Damaged lines between ops (read past only when asked: they may have held ops)."""
        return tuple(d for d in self.damage if not d.tail)

    def notes(self) -> list[str]:
        return [d.describe(self.source) for d in self.damage]


def _line_problem(raw: bytes) -> tuple[Any, str | None]:
    """(the decoded JSON value, None) or (None, why the line is unreadable)."""
    if b"\x00" in raw:
        return None, "NUL bytes"
    try:
        return json.loads(raw.decode("utf-8")), None
    except UnicodeDecodeError:
        return None, "not UTF-8"
    except ValueError as exc:
        return None, f"not valid JSON: {getattr(exc, 'msg', exc)}"
    except RecursionError:
        return None, "nested too deeply"


def parse_jsonl(
    data: bytes, source: str = "history", skip_damaged: bool = False, with_lines: bool = False
) -> HistoryRead:
    """Every op of a JSON Lines history, reading past a damaged tail (and, with
    ``skip_damaged``, damaged lines between ops); a line that is JSON but no op
    raises HistoryError naming it: that is a wrong history, not a torn one.
    ``with_lines`` keeps each op's line in ``extra["line"]`` (for imported files)."""
    ops: list[Op] = []
    bad: list[tuple[int, int, int, str, int]] = []  # line, offset, length, reason, ops before
    offset = 0
    for n, raw in enumerate(data.split(b"\n"), start=1):
        here, offset = offset, offset + len(raw) + 1
        if not raw.strip():
            continue
        obj, problem = _line_problem(raw)
        if problem is not None:
            bad.append((n, here, len(raw), problem, len(ops)))
            continue
        op = op_from_json(obj, n, source)
        ops.append(op.with_(extra={**op.extra, "line": n}) if with_lines else op)
    end = len(data)
    tail = [b for b in bad if b[4] == len(ops)]
    middle = [b for b in bad if b[4] < len(ops)]
    if middle and not skip_damaged:
        n, _, length, reason, _ = middle[0]
        raise HistoryError(
            f"{source}:{n}: damaged line ({reason}; {length} bytes) with {len(middle) - 1} "
            "more after it, between ops; pass --skip-damaged to check the rest without them"
        )
    damage = [Damage(line=b[0], offset=b[1], length=b[2], reason=b[3], tail=False) for b in middle]
    if tail:
        first = tail[0]
        damage.append(
            Damage(
                line=first[0], offset=first[1], length=end - first[1], reason=first[3], tail=True
            )
        )
    return HistoryRead(ops=ops, damage=tuple(damage), source=source)


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """A history file's bytes; HistoryError (never a hang) for what is no regular file."""
    p = Path(path)
    try:
        if not stat.S_ISREG(p.stat().st_mode):
            raise HistoryError(f"{p} is not a regular file (a FIFO, a device or a directory?)")
        return p.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise HistoryError(f"{p}: cannot read the history: {exc.strerror}") from None


def load_history(path: str | os.PathLike[str], skip_damaged: bool = False) -> HistoryRead:
    """Reads a history.jsonl: its ops (indexed) and any damage read past (``HistoryRead``)."""
    got = parse_jsonl(read_bytes(path), str(path), skip_damaged)
    ops = got.ops
    if any(o.index < 0 for o in ops) or any(a.index >= b.index for a, b in itertools.pairwise(ops)):
        ops = reindex(ops)
    return HistoryRead(ops=ops, damage=got.damage, source=got.source)


def iter_history(path: str | os.PathLike[str]) -> Iterator[Op]:
    """The ops of a history.jsonl, up to a damaged tail; damage between ops raises HistoryError."""
    yield from load_history(path).ops


def read_history(path: str | os.PathLike[str], skip_damaged: bool = False) -> list[Op]:
    """Reads a whole history.jsonl (see ``load_history``), re-indexing ops that carry no index."""
    return load_history(path, skip_damaged).ops


def reindex(ops: Iterable[Op]) -> list[Op]:
    return [o if o.index == i else o.with_(index=i) for i, o in enumerate(ops)]


def write_history(path: str | os.PathLike[str], ops: Iterable[Op]) -> None:
    with Path(path).open("w", encoding="utf-8") as fh:
        for op in ops:
            fh.write(json.dumps(op.to_json(), separators=(",", ":"), default=str) + "\n")


class HistoryWriter:
    """Appends ops to history.jsonl as they happen, thread-safe.

    Assigns ``index`` and ``time`` (ns since ``start_ns``) at the moment of
    recording, so the file order is the observed order. Each line is flushed
    at once: a SIGKILL of the runner loses at most the line being written.
    """

    def __init__(self, path: str | os.PathLike[str], start_ns: int | None = None) -> None:
        self.path = Path(path)
        self.start_ns = time.monotonic_ns() if start_ns is None else start_ns
        self._lock = threading.Lock()
        self._fh: IO[str] | None = self.path.open("a", encoding="utf-8")
        self._ops: list[Op] = []

    def now(self) -> int:
        return time.monotonic_ns() - self.start_ns

    def record(self, op: Op) -> Op:
        with self._lock:
            stamped = op.with_(index=len(self._ops), time=op.time or self.now())
            self._ops.append(stamped)
            if self._fh is not None:
                self._fh.write(
                    json.dumps(stamped.to_json(), separators=(",", ":"), default=str) + "\n"
                )
                self._fh.flush()
            return stamped

    @property
    def ops(self) -> list[Op]:
        with self._lock:
            return list(self._ops)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()
                self._fh = None

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class Pair:
    """An invocation and its completion (None while it never completed)."""

    invoke: Op
    complete: Op | None

    @property
    def type(self) -> str:
        return self.complete.type if self.complete is not None else INFO


def pair_ops(ops: Iterable[Op]) -> list[Pair]:
    """Pairs each invoke with its completion by process.

    Raises HistoryError for a completion with no open invoke, or a second
    invoke on a process whose previous op has not completed: the two ways a
    history stops being well formed. An invoke left open at the end is
    paired with None (indeterminate, like ``info``).
    """
    open_by_process: dict[Process, int] = {}
    pairs: list[Pair | None] = []
    slots: list[Op] = []
    for op in ops:
        if op.type == INVOKE:
            if op.process in open_by_process:
                prev = slots[open_by_process[op.process]]
                raise HistoryError(
                    f"op {op.index}: process {op.process} invoked {op.f!r} while its op "
                    f"{prev.index} ({prev.f!r}) has not completed; a process runs one op at a time "
                    "(a worker whose op ended info must take a fresh process id)"
                )
            open_by_process[op.process] = len(slots)
            slots.append(op)
            pairs.append(None)
        else:
            at = open_by_process.pop(op.process, None)
            if at is None:
                raise HistoryError(
                    f"op {op.index}: {op.type} {op.f!r} on process {op.process} completes "
                    "no invocation (completion without an invoke)"
                )
            pairs[at] = Pair(slots[at], op)
    return [p if p is not None else Pair(slots[i], None) for i, p in enumerate(pairs)]


def client_ops(ops: Iterable[Op]) -> list[Op]:
    return [o for o in ops if not o.is_nemesis]


def nemesis_ops(ops: Iterable[Op]) -> list[Op]:
    return [o for o in ops if o.is_nemesis]


def fault_windows(ops: Iterable[Op]) -> list[dict[str, Any]]:
    """Time windows in which each fault was active, from nemesis ops.

    A nemesis op ``f`` of the form ``start-X`` opens a window for fault X and
    ``stop-X`` closes the newest open one (completions of type ok or info
    count; invokes are ignored so a window starts when the fault took
    effect). A completion whose value says the fault had been acting for a
    while already (``in_effect_for_s``) opens its window that much earlier. A
    window never closed ends at the last op of the history.
    """
    ops = list(ops)
    end = max((o.time for o in ops), default=0)
    open_: dict[str, list[dict[str, Any]]] = {}
    out: list[dict[str, Any]] = []
    for op in ops:
        if not op.is_nemesis or op.type == INVOKE:
            continue
        if op.f.startswith("start-"):
            kind = op.f[len("start-") :]
            held = op.value.get(IN_EFFECT_FOR) if isinstance(op.value, dict) else None
            lead = int(held * 1e9) if isinstance(held, int | float) and held > 0 else 0
            w = {"fault": kind, "start": op.time - lead, "end": None, "value": op.value}
            open_.setdefault(kind, []).append(w)
            out.append(w)
        elif op.f.startswith("stop-"):
            kind = op.f[len("stop-") :]
            if open_.get(kind):
                open_[kind].pop()["end"] = op.time
    for w in out:
        if w["end"] is None:
            w["end"] = end
            w["unhealed"] = True
    return out


def as_dict(op: Op) -> dict[str, Any]:
    return asdict(op)
