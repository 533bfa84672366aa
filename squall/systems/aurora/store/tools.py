"""Offline tools on a node's data directory.

``python -m squall.systems.aurora.store.tools digest DATA_DIR`` restores a copy of the data dir in
this process (the newest snapshot, then the log up to the last index the node
recorded as applied) and prints ``{"index", "digest", "requests"}`` (the request
ids it applied, with their log index where the log still holds them). It works on a
temporary copy, so the directory it is given is never changed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

from .fsutil import DamagedData
from .statemachine import digest_of
from .store import open_state
from .wal import Wal


def offline_digest(data_dir: Path) -> dict[str, object]:
    if not (data_dir / "raft.log").exists():
        raise FileNotFoundError(f"{data_dir} holds no raft.log: is it a node's data dir?")
    with tempfile.TemporaryDirectory(prefix="squall-digest-") as tmp:
        copy = Path(tmp) / "data"
        shutil.copytree(data_dir, copy, ignore=shutil.ignore_patterns("state.db*"))
        wal, sm, _, _ = open_state(copy, digest_every=0, lossy=False, fsync=False)
        try:
            assert sm.conn is not None
            return {
                "index": sm.applied_index,
                "digest": digest_of(sm.conn),
                "requests": applied_requests(wal, sm.conn, sm.applied_index),
            }
        finally:
            sm.close()
            wal.close()


def applied_requests(wal: Wal, conn: sqlite3.Connection, applied: int) -> list[list[Any]]:
    """Every request id the restored state applied: [id, log index, took effect].

    The index is known for the entries still in the log (those a snapshot
    covers have lost theirs: None); "took effect" is False for a request the
    state machine refused (a cas whose precondition failed changed nothing).
    """
    index: dict[str, int] = {}
    for i in range(wal.base_index + 1, min(applied, wal.last_index) + 1):
        rid = wal.get(i).command.get("request_id")
        if isinstance(rid, str):
            index.setdefault(rid, i)
    out: list[list[Any]] = []
    for rid, result in conn.execute("SELECT request_id, result FROM requests ORDER BY request_id"):
        took = not (isinstance(r := json.loads(result), dict) and "error" in r)
        out.append([rid, index.get(rid), took])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m squall.systems.aurora.store.tools")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("digest", help="restore a data dir offline and print its state digest")
    d.add_argument("data_dir", type=Path)
    a = p.parse_args(argv)
    try:
        print(json.dumps(offline_digest(a.data_dir)))
    except (DamagedData, FileNotFoundError) as e:
        print(f"cannot restore {a.data_dir}: {e}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
