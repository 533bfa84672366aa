"""How long this node's oldest disk write has been waiting: a stuck disk, seen from inside.

A leader whose disk stops answering (a dying device, a full journal, a
``disk-stall`` nemesis) still has a live event loop: it heartbeats, so its
followers never time out, yet it cannot apply a committed entry and so
cannot answer any client. Check-quorum does not see it either, because the
followers keep acknowledging. Without this watch, writes wait for as long as
the disk does (the proof matrix measured 5.2 s).

The log's write+fsync, the state's commit and the term/vote file each
register while in flight; Raft asks ``stalled_for()`` on every tick. A leader
stuck longer than the longest election timeout steps down, and a node stuck
at all does not campaign (``system.raft``). Thread-safe: the writes run on
I/O threads, the question is asked on the event loop.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class DiskWatch:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[int, float] = {}
        self._ids = itertools.count()

    @contextmanager
    def write(self) -> Iterator[None]:
        """Wraps one disk write (with its fsync) while it runs."""
        token = next(self._ids)
        with self._lock:
            self._started[token] = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                del self._started[token]

    def stalled_for(self) -> float:
        """Seconds the oldest write still in flight has waited; 0.0 when none is."""
        with self._lock:
            if not self._started:
                return 0.0
            oldest = min(self._started.values())
        return max(0.0, time.monotonic() - oldest)
