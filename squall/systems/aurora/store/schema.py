"""What the state is made of: a registry of tables and of the ops that change them.

A domain (the key-value register here, the scheduler later) plugs in by
calling ``table(...)`` for each of its tables and decorating each apply
function with ``@op("domain.name")``. An apply function takes the writer
connection (inside an open transaction) and the command dict, and returns a
JSON-ready result; it must be deterministic (no clocks, no randomness: the
leader puts any such value into the command). Raising ``Rejected`` makes the
op a no-op whose result is the rejection, so every replica rejects alike.

The digest and the ``rows`` codec see the state only through ``TABLES``, so a
new table is covered by both without further code.
"""

from __future__ import annotations

import contextvars
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ApplyFn = Callable[[sqlite3.Connection, dict[str, Any]], Any]


@dataclass(frozen=True)
class Table:
    name: str
    ddl: str  # CREATE TABLE statement
    key: tuple[str, ...]  # primary-key columns: the digest's row order


class Rejected(Exception):
    """A deterministic refusal (e.g. a failed precondition): the result carries ``detail``."""

    def __init__(self, code: str, detail: dict[str, Any]) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


TABLES: list[Table] = []
OPS: dict[str, ApplyFn] = {}

# The log index of the entry being applied. Apply functions that record "the
# index this happened at" must read it here, never from ``_meta``: entries are
# applied in runs sharing one transaction, and ``_meta`` holds the index of the
# run's end, which differs between replicas that cut runs differently.
APPLYING_INDEX: contextvars.ContextVar[int] = contextvars.ContextVar("APPLYING_INDEX")


def table(name: str, ddl: str, key: tuple[str, ...]) -> Table:
    if any(t.name == name for t in TABLES):
        raise ValueError(f"table {name} is registered twice")
    t = Table(name, ddl, key)
    TABLES.append(t)
    return t


def op(name: str) -> Callable[[ApplyFn], ApplyFn]:
    def register(fn: ApplyFn) -> ApplyFn:
        if name in OPS:
            raise ValueError(f"op {name} is registered twice")
        OPS[name] = fn
        return fn

    return register


def canonical(value: Any) -> str:
    """The one JSON spelling of a value: equal values, equal text (digests depend on it)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# -- the core tables and ops ---------------------------------------------------
# requests: the client request ids already applied, with their results, so a
# retried request is applied once. It lives in the database, so snapshots carry it.
table(
    "requests",
    "CREATE TABLE requests (request_id TEXT PRIMARY KEY, result TEXT NOT NULL)",
    ("request_id",),
)
table("kv", "CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)", ("key",))


@op("noop")
def _noop(conn: sqlite3.Connection, cmd: dict[str, Any]) -> Any:
    return None


def _get(conn: sqlite3.Connection, key: str) -> Any:
    row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
    return None if row is None else json.loads(row[0])


@op("kv.put")
def _put(conn: sqlite3.Connection, cmd: dict[str, Any]) -> Any:
    conn.execute(
        "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)",
        (cmd["key"], canonical(cmd["value"])),
    )
    return {"ok": True}


@op("kv.cas")
def _cas(conn: sqlite3.Connection, cmd: dict[str, Any]) -> Any:
    current = _get(conn, cmd["key"])
    if canonical(current) != canonical(cmd["from"]):
        raise Rejected("precondition_failed", {"current": current})
    return _put(conn, {"key": cmd["key"], "value": cmd["to"]})


@op("txn")
def _txn(conn: sqlite3.Connection, cmd: dict[str, Any]) -> Any:
    """Several ops applied atomically (Aurora's Transaction): all or, on a rejection, none."""
    conn.execute("SAVEPOINT txn")
    try:
        results = [OPS[sub["op"]](conn, sub) for sub in cmd["ops"]]
    except Rejected:
        conn.execute("ROLLBACK TO txn")
        conn.execute("RELEASE txn")
        raise
    conn.execute("RELEASE txn")
    return {"ok": True, "results": results}


def read_kv(conn: sqlite3.Connection, key: str) -> Any:
    return _get(conn, key)


def read_prefix(conn: sqlite3.Connection, prefix: str) -> dict[str, Any]:
    """Every key that starts with ``prefix`` (compared as text, not a LIKE pattern)."""
    rows = conn.execute(
        "SELECT key, value FROM kv WHERE substr(key, 1, ?) = ? ORDER BY key", (len(prefix), prefix)
    )
    return {k: json.loads(v) for k, v in rows}
