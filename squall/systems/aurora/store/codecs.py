"""Snapshot codecs: how a state image is written to a file and read back.

A codec is ``encode(conn) -> bytes`` (taken on the writer connection, between
transactions, so it is the state at exactly one applied index) and
``restore(data, db_path) -> None`` (builds the database file at ``db_path``).
``dump`` is SQLite's own database image, restored in one step by writing the
file. A ``rows`` codec (objects re-inserted one by one, Aurora's old way)
registers itself here with ``CODECS["rows"] = RowsCodec()``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Protocol


class Codec(Protocol):
    name: str

    def encode(self, conn: sqlite3.Connection) -> bytes: ...

    def restore(self, data: bytes, db_path: Path) -> None: ...


class DumpCodec:
    """The SQLite database image (``Connection.serialize``), restored by writing it as the file."""

    name = "dump"

    def encode(self, conn: sqlite3.Connection) -> bytes:
        return conn.serialize()

    def restore(self, data: bytes, db_path: Path) -> None:
        db_path.write_bytes(data)


CODECS: dict[str, Codec] = {"dump": DumpCodec()}


def get(name: str) -> Codec:
    try:
        return CODECS[name]
    except KeyError:
        raise ValueError(
            f"snapshot codec {name!r} is not available; known: {', '.join(sorted(CODECS))}"
        ) from None
