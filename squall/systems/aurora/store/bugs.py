"""Deliberate bug modes: the faults Squall must be able to catch.

All are off by default. Turn them on with the config's ``bugs:`` list or the
``SQUALL_BUGS`` environment variable (comma separated); both add up. Each bug
is a few lines at the point where the correct code would do otherwise, marked
with ``bugs.STALE_READ`` etc., so ``grep`` finds every one.

``stale-read``
    Reads are served from the local state on any node (follower, deposed
    leader) with no ReadIndex round: a partitioned old leader answers with old
    values. Caught by the linearizability checker.
``early-ack``
    The leader acknowledges a write as soon as it is appended to its own log,
    before a majority has it. Killing the leader loses acknowledged writes.
``lossy-snapshot``
    A snapshot omits the last few applied entries (it is taken from a shadow
    copy of the state that lags ``LOSSY_LAG`` entries behind) yet the log is
    truncated up to the snapshot's claimed index anyway. A node restarted
    from that snapshot has a different digest. Caught by the fidelity checker.
``no-fsync``
    The log, the term/vote file and snapshots are written but never fsynced:
    only a power cut (or LazyFS) shows it; a process kill does not.
``forgive-fsync``
    A failed fsync fails only the request that asked for it and the node
    carries on; a later fsync that succeeds is taken to cover the earlier
    bytes, which Linux may have dropped. The correct store stops (fsutil).
    Caught with the disk-stall ``eio`` mode, which drops the unsynced tail.
``rename-before-fsync``
    A snapshot is renamed into place (and the rename made durable) before
    its data is fsynced: a power cut in between leaves a snapshot that is
    there by name but not by content. Caught by the failpoint
    ``snapshot.renamed`` followed by a power cut.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

STALE_READ = "stale-read"
EARLY_ACK = "early-ack"
LOSSY_SNAPSHOT = "lossy-snapshot"
NO_FSYNC = "no-fsync"
FORGIVE_FSYNC = "forgive-fsync"
RENAME_BEFORE_FSYNC = "rename-before-fsync"
KNOWN = (STALE_READ, EARLY_ACK, LOSSY_SNAPSHOT, NO_FSYNC, FORGIVE_FSYNC, RENAME_BEFORE_FSYNC)
LOSSY_LAG = 3  # entries a lossy snapshot leaves out


def resolve(configured: Iterable[str], env: str | None = None) -> frozenset[str]:
    """The active bug modes: the config's list plus ``SQUALL_BUGS``; unknown names are an error."""
    names = {b.strip() for b in configured if b and b.strip()}
    raw = os.environ.get("SQUALL_BUGS", "") if env is None else env
    names |= {b.strip() for b in raw.split(",") if b.strip()}
    unknown = sorted(names - set(KNOWN))
    if unknown:
        raise ValueError(f"unknown bug mode(s) {', '.join(unknown)}; known: {', '.join(KNOWN)}")
    return frozenset(names)
