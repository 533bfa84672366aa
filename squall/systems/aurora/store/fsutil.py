"""Atomic, durable file writes: the one place that decides what "written" means."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from . import failpoints


class DamagedData(RuntimeError):
    """Persistent state is damaged in a way a crash cannot explain: the node must not serve it."""


# The bug mode forgive-fsync (bugs.FORGIVE_FSYNC): set once by the node at start.
# One node is one process, so this is the process's policy, like the failpoints.
forgive_fsync = False
FSYNC_EXIT = 5  # the exit status of a node that stopped on a failed fsync


def fsync_failed(what: Path | str, error: OSError) -> None:
    """A failed fsync: the node stops at once, unless the bug mode forgives it (then it raises).

    After a failed fsync Linux may have dropped the dirty pages and cleared the
    error: a later fsync then succeeds without the bytes, and a store that
    retries takes them for durable (PostgreSQL's "fsyncgate"; PostgreSQL, MySQL
    and etcd crash-stop instead). Restarting re-reads what the disk really
    holds, and the cluster repairs the rest.
    """
    if forgive_fsync:  # bugs.FORGIVE_FSYNC: the request fails, the node carries on
        raise error
    stop_now(
        f"fsync of {what} failed ({error.strerror or error}); the kernel may have dropped "
        "the unsynced data, so the node stops rather than trust it (restart it to recover)"
    )


def stop_now(reason: str) -> None:
    """Exits the process at once with the reason on stdout (no cleanup may write anything more)."""
    sys.stdout.write(f"stopped: {reason}\n")
    sys.stdout.flush()
    os._exit(FSYNC_EXIT)


def fsync_fd(fd: int, what: Path | str, point: str | None = None, enabled: bool = True) -> None:
    """fsyncs ``fd``; ``point`` is the failpoint just before it (its ``error`` fails the fsync)."""
    try:
        if point:
            failpoints.hit(point)
        if enabled:
            os.fsync(fd)
    except OSError as e:
        fsync_failed(what, e)


def fsync_dir(path: Path, point: str | None = None, enabled: bool = True) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        fsync_fd(fd, path, point, enabled)
    finally:
        os.close(fd)


def write_atomic(
    path: Path,
    chunks: list[bytes],
    fsync: bool = True,
    point: str | None = None,
    rename_first: bool = False,
) -> int:
    """Writes ``path`` so that a crash leaves either the old file or the whole new one.

    temp file, fsync, rename over, fsync the directory: without the last step
    the rename itself may be lost on power failure. ``point`` names the
    failpoints of the steps (``<point>.tmp-written`` ..., failpoints.ATOMIC_STEPS).
    ``rename_first`` is the bug mode ``rename-before-fsync``: the new name is
    in place (and durable) before its data is, so a power cut in between
    leaves a file that is all there by name and not by content.
    """
    tmp = path.with_name(path.name + ".tmp")

    def at(step: str) -> str | None:
        return f"{point}.{step}" if point else None

    size = 0
    with open(tmp, "wb") as f:
        for c in chunks:
            f.write(c)
            size += len(c)
        f.flush()
        if rename_first:  # bugs.RENAME_BEFORE_FSYNC
            os.replace(tmp, path)
            fsync_dir(path.parent, at("tmp-written"), fsync)
            fsync_fd(f.fileno(), path, at("renamed"), fsync)
            if point:
                failpoints.hit(f"{point}.tmp-fsynced")
                failpoints.hit(f"{point}.dir-fsynced")
            return size
        fsync_fd(f.fileno(), tmp, at("tmp-written"), fsync)
        if point:
            failpoints.hit(f"{point}.tmp-fsynced")
    os.replace(tmp, path)
    fsync_dir(path.parent, at("renamed"), fsync)
    if point:
        failpoints.hit(f"{point}.dir-fsynced")
    return size


def write_json_atomic(path: Path, value: Any, fsync: bool = True, point: str | None = None) -> None:
    write_atomic(path, [json.dumps(value, sort_keys=True).encode()], fsync, point)
