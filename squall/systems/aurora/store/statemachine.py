"""The replicated state: committed log entries applied to SQLite, in order, exactly once.

One writer connection, used only on the writer thread, applies a run of
entries per transaction and records the applied index in the same
transaction, so "applied" and "state" never disagree. Apply digests are
taken on a thread of their own from a read transaction pinned to their index. Readers use their own connections on
other threads: SQLite's WAL mode lets them read the last committed state
while the writer goes on, so a read storm never blocks a write.

The database file is scratch: on every start it is rebuilt from the newest
snapshot plus the log, never trusted from a previous run (so a snapshot that
lost data shows up as a different digest instead of being papered over).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, TypeVar

from . import codecs, schema
from .diskwatch import DiskWatch
from .fsutil import DamagedData
from .schema import Rejected
from .wal import Entry

T = TypeVar("T")
META_DDL = "CREATE TABLE _meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)"


def connect(path: Path | str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # The log and snapshots carry durability; this file is rebuilt on start.
    conn.execute("PRAGMA synchronous=OFF")
    return conn


def _remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(str(path) + suffix).unlink()


def _squash(sql: str | None) -> str:
    return " ".join((sql or "").split())


def verify_image(path: Path, index: int, term: int) -> None:
    """Raises ValueError (or sqlite3.DatabaseError) unless ``path`` is a sound database of
    exactly this store's schema whose applied index and term are the ones claimed.

    Exactly: an extra table, view or trigger in a received image would be
    carried into the state (a trigger even runs on every later apply).
    """
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        checked = conn.execute("PRAGMA quick_check").fetchall()
        if checked != [("ok",)]:
            raise ValueError(f"the database fails its check: {checked[0][0]}")
        found = {
            (kind, name): _squash(sql)
            for kind, name, sql in conn.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_autoindex_%'"
            )
        }
        want = {("table", "_meta"): _squash(META_DDL)}
        want.update({("table", t.name): _squash(t.ddl) for t in schema.TABLES})
        if found != want:
            odd = sorted(f"{k[0]} {k[1]}" for k in set(found) ^ set(want))
            changed = sorted(k[1] for k in set(found) & set(want) if found[k] != want[k])
            raise ValueError(f"its schema differs from this store's ({', '.join(odd + changed)})")
        if applied_of(conn) != (index, term):
            got = applied_of(conn)
            raise ValueError(
                f"it claims index {index} term {term} but holds state of {got[0]} term {got[1]}"
            )
    finally:
        conn.close()


def create_schema(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN")
    conn.execute(META_DDL)
    conn.executemany("INSERT INTO _meta VALUES (?, 0)", [("applied_index",), ("applied_term",)])
    for t in schema.TABLES:
        conn.execute(t.ddl)
    conn.execute("COMMIT")


def applied_of(conn: sqlite3.Connection) -> tuple[int, int]:
    rows = dict(conn.execute("SELECT k, v FROM _meta").fetchall())
    return int(rows["applied_index"]), int(rows["applied_term"])


def digest_of(conn: sqlite3.Connection) -> str:
    """SHA-256 of the logical state: every registered table's rows in key order, one JSON array a row.

    File bytes differ between replicas with equal state (page layout, free
    lists), so the digest reads rows, never the file. SQLite spells each row
    (``json_array``) and joins a table's rows in one statement: in C, without
    Python's GIL, so a digest of a large state neither holds the event loop nor
    starves the writer (row by row in Python it took ~300 ms for 28k rows).
    Every replica and the offline tool run this same query on the same SQLite.
    """
    h = hashlib.sha256()
    for t in sorted(schema.TABLES, key=lambda t: t.name):
        h.update(f"table {t.name}\n".encode())
        text = conn.execute(_digest_sql(conn, t)).fetchone()[0]
        if text is not None:  # None: the table is empty
            h.update(text.encode() + b"\n")
    return h.hexdigest()


_DIGEST_SQL: dict[str, str] = {}


def _digest_sql(conn: sqlite3.Connection, t: schema.Table) -> str:
    """One table's rows, ordered by its key, as newline-joined JSON arrays (one SQL statement).

    The subquery's ORDER BY is kept: SQLite does not flatten an ordered
    subquery into an aggregate (the flattener's rule 16).
    """
    sql = _DIGEST_SQL.get(t.name)
    if sql is None:
        cols = ", ".join(f'"{c[1]}"' for c in conn.execute(f"PRAGMA table_info({t.name})"))
        order = ", ".join(t.key)
        sql = (
            f"SELECT group_concat(json_array({cols}), char(10)) FROM"  # noqa: S608 (registered names)
            f" (SELECT * FROM {t.name} ORDER BY {order})"
        )
        _DIGEST_SQL[t.name] = sql
    return sql


def apply_in_tx(conn: sqlite3.Connection, e: Entry) -> Any:
    """Applies one entry inside the caller's open transaction; returns its result (dedupe by request_id)."""
    cmd = e.command
    rid = cmd.get("request_id")
    prior = (
        rid and conn.execute("SELECT result FROM requests WHERE request_id = ?", (rid,)).fetchone()
    )
    if prior:
        return json.loads(prior[0])
    fn = schema.OPS.get(cmd.get("op", ""))
    if fn is None:  # validated before append; an unknown op here is a newer peer's: refuse alike
        result: Any = {"error": "bad_request", "message": f"unknown op {cmd.get('op')!r}"}
    else:
        token = schema.APPLYING_INDEX.set(e.index)
        try:
            result = fn(conn, cmd)
        except Rejected as r:
            result = {"error": r.code, **r.detail}
        finally:
            schema.APPLYING_INDEX.reset(token)
    if rid:
        conn.execute("INSERT INTO requests VALUES (?, ?)", (rid, schema.canonical(result)))
    return result


def set_applied(conn: sqlite3.Connection, index: int, term: int) -> None:
    conn.execute(
        "UPDATE _meta SET v = CASE k WHEN 'applied_index' THEN ? ELSE ? END", (index, term)
    )


def apply_one(conn: sqlite3.Connection, e: Entry) -> Any:
    """Applies one entry in its own transaction; returns its result."""
    conn.execute("BEGIN")
    try:
        result = apply_in_tx(conn, e)
        set_applied(conn, e.index, e.term)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return result


class StateMachine:
    """Owns the SQLite files under ``data_dir``; every writer call runs on the caller's (writer) thread."""

    def __init__(self, data_dir: Path, digest_every: int, lossy_lag: int = 0) -> None:
        self.db_path = data_dir / "state.db"
        self.digest_every = digest_every
        self.lossy_lag = lossy_lag
        self.conn: sqlite3.Connection | None = None
        self.applied_index = 0
        self.applied_term = 0
        self._readers = threading.local()
        self._generation = 0  # bumped on restore: reader connections reopen
        self._shadow: sqlite3.Connection | None = None
        self._shadow_queue: deque[Entry] = deque()
        self.digests = DigestLog(data_dir / "digests.jsonl")
        # Apply digests are computed on their own thread and connection, pinned to
        # the state at their index, so the writer goes on applying meanwhile.
        self._digest_pool: ThreadPoolExecutor | None = None
        self._digest_conn: sqlite3.Connection | None = None
        self._digest_pending: Future[None] | None = None
        self.disk = DiskWatch()  # the node's, once wired (system.store)

    # -- lifecycle (writer thread) ---------------------------------------------
    def _remove_files(self) -> None:
        _remove_db(self.db_path)

    def open_empty(self) -> None:
        self.close()
        self._remove_files()
        self.conn = connect(self.db_path)
        create_schema(self.conn)
        self._after_open()

    def restore(self, codec_name: str, data: bytes, index: int, term: int) -> str:
        """Replaces the state by a snapshot's; returns the digest after restore.

        The snapshot is restored into a file of its own and verified there
        (``verify_image``) before the current state is touched: a snapshot
        that is not a database of this schema at the index it claims raises
        DamagedData and leaves the node exactly as it was.
        """
        incoming = self.db_path.with_name("incoming.db")
        _remove_db(incoming)
        try:
            codecs.get(codec_name).restore(data, incoming)
            verify_image(incoming, index, term)
        except (sqlite3.DatabaseError, ValueError, KeyError, TypeError) as e:
            _remove_db(incoming)
            raise DamagedData(f"snapshot at index {index} is not a usable state: {e}") from None
        except BaseException:
            _remove_db(incoming)
            raise
        self.close()
        self._remove_files()
        os.replace(incoming, self.db_path)
        self.conn = connect(self.db_path)
        self._after_open()
        d = digest_of(self.conn)
        self.digests.record("restore", index, d)
        return d

    def _after_open(self) -> None:
        assert self.conn is not None
        self.applied_index, self.applied_term = applied_of(self.conn)
        self._generation += 1
        if self.lossy_lag:
            self._shadow = sqlite3.connect(
                ":memory:", isolation_level=None, check_same_thread=False
            )
            self.conn.backup(self._shadow)
            self._shadow_queue.clear()

    def close(self) -> None:
        self._wait_digest()
        if self._digest_conn is not None:
            self._digest_conn.close()
            self._digest_conn = None
        if self._digest_pool is not None:
            self._digest_pool.shutdown()
            self._digest_pool = None
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # -- applying (writer thread) -----------------------------------------------
    def apply(self, entries: Iterable[Entry]) -> list[tuple[Entry, Any]]:
        """Applies entries in order; returns each newly applied entry with its result.

        A run of entries shares one transaction, which also records the applied
        index, so state and index still never disagree; one commit per run
        instead of per entry is most of the writer's time saved. A run ends
        at each digest index, so the digest's read transaction can pin it.
        """
        assert self.conn is not None
        conn = self.conn
        out: list[tuple[Entry, Any]] = []
        before: tuple[int, int] | None = None  # (index, term) when the open transaction began
        try:
            for e in entries:
                if e.index <= self.applied_index:
                    continue  # exactly once: already in the state
                if e.index != self.applied_index + 1:
                    raise ValueError(
                        f"apply gap: entry {e.index} after applied {self.applied_index}"
                    )
                if before is None:
                    conn.execute("BEGIN")
                    before = (self.applied_index, self.applied_term)
                out.append((e, apply_in_tx(conn, e)))
                self.applied_index, self.applied_term = e.index, e.term
                if self._shadow is not None:  # bugs.LOSSY_SNAPSHOT: the lagging copy snapshots read
                    self._shadow_queue.append(e)
                    while len(self._shadow_queue) > self.lossy_lag:
                        apply_one(self._shadow, self._shadow_queue.popleft())
                if self.digest_every and e.index % self.digest_every == 0:
                    self._commit()
                    before = None
                    self._digest_later(e.index)
            if before is not None:
                self._commit()
                before = None
        except BaseException:
            if before is not None:  # nothing of the open transaction happened
                conn.execute("ROLLBACK")
                self.applied_index, self.applied_term = before
            raise
        return out

    def _commit(self) -> None:
        assert self.conn is not None
        set_applied(self.conn, self.applied_index, self.applied_term)
        with self.disk.write():
            self.conn.execute("COMMIT")

    def _digest_later(self, index: int) -> None:
        """Records the digest at ``index`` (just applied) from a read transaction pinned to it.

        In WAL mode a read transaction sees the state as of its first read for
        as long as it stays open, whatever the writer commits later: the
        digest is of exactly this index, and the writer does not wait for it.
        One at a time (the connection holds one pinned state); a digest still
        running when the next is due is waited for, which bounds the lag.
        """
        self._wait_digest()
        if self._digest_conn is None:
            self._digest_conn = sqlite3.connect(
                f"file:{self.db_path}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
        if self._digest_pool is None:
            self._digest_pool = ThreadPoolExecutor(1, thread_name_prefix="digest")
        conn = self._digest_conn
        conn.execute("BEGIN")
        pinned = applied_of(conn)[0]  # the first read fixes the transaction's state
        if pinned != index:
            conn.execute("COMMIT")
            raise RuntimeError(
                f"digest connection sees index {pinned}, not the just applied {index}"
            )
        self._digest_pending = self._digest_pool.submit(self._digest_pinned, conn, index)
        self.digests.inflight = self._digest_pending

    def _digest_pinned(self, conn: sqlite3.Connection, index: int) -> None:
        try:
            self.digests.record("apply", index, digest_of(conn))
        finally:
            conn.execute("COMMIT")

    def _wait_digest(self) -> None:
        """Waits for the digest in flight, if any; re-raises its failure here, on the writer."""
        pending, self._digest_pending = self._digest_pending, None
        if pending is not None:
            pending.result()

    def image(self, codec_name: str) -> tuple[int, int, bytes, str]:
        """(index, term, encoded state, digest) at the applied index, for a snapshot."""
        assert self.conn is not None
        codec = codecs.get(codec_name)
        d = digest_of(self.conn)
        src = self.conn
        if (
            self._shadow is not None
        ):  # bugs.LOSSY_SNAPSHOT: the lagging copy, claiming the real index
            src = self._shadow
            src.execute("UPDATE _meta SET v = ? WHERE k = 'applied_index'", (self.applied_index,))
            src.execute("UPDATE _meta SET v = ? WHERE k = 'applied_term'", (self.applied_term,))
        return self.applied_index, self.applied_term, codec.encode(src), d

    def digest(self) -> tuple[int, str]:
        assert self.conn is not None
        return self.applied_index, digest_of(self.conn)

    # -- reading (any reader thread) --------------------------------------------
    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        r = self._readers
        if getattr(r, "generation", None) != self._generation:
            if getattr(r, "conn", None) is not None:
                r.conn.close()
            r.conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, isolation_level=None)
            r.generation = self._generation
        return fn(r.conn)


class DigestLog:
    """``digests.jsonl``: every digest this node recorded, across restarts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.inflight: Future[None] | None = None  # a digest of an applied index, being computed

    def record(self, event: str, index: int, digest: str) -> None:
        line = json.dumps({"event": event, "index": index, "digest": digest, "time": time.time()})
        with self._lock, open(self.path, "a") as f:
            f.write(line + "\n")

    def read(self) -> list[dict[str, Any]]:
        """Every digest recorded, including the one of an applied index still being computed."""
        inflight = self.inflight
        if inflight is not None:
            wait([inflight])
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            with contextlib.suppress(ValueError):  # a line torn by a kill is skipped
                out.append(json.loads(line))
        return out
