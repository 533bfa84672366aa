"""Atomic, durable file writes: the one place that decides what "written" means."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class DamagedData(RuntimeError):
    """Persistent state is damaged in a way a crash cannot explain: the node must not serve it."""


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, chunks: list[bytes], fsync: bool = True) -> int:
    """Writes ``path`` so that a crash leaves either the old file or the whole new one.

    temp file, fsync, rename over, fsync the directory: without the last step
    the rename itself may be lost on power failure.
    """
    tmp = path.with_name(path.name + ".tmp")
    size = 0
    with open(tmp, "wb") as f:
        for c in chunks:
            f.write(c)
            size += len(c)
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if fsync:
        fsync_dir(path.parent)
    return size


def write_json_atomic(path: Path, value: Any, fsync: bool = True) -> None:
    write_atomic(path, [json.dumps(value, sort_keys=True).encode()], fsync)
