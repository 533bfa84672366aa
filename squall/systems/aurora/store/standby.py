"""Cold standby (``standby: cold``), as Aurora's schedulers failed over.

Aurora's standby schedulers kept no live state: they replicated the log, and
the one that won leadership rebuilt its database from the newest snapshot
plus the log tail before it served. That is why the snapshot codec decided
failover downtime there (row-by-row inserts against a database dump), and a
hot standby, which applies as it replicates, cannot show it.

In cold mode a follower replicates and fsyncs the log (Raft is unchanged)
but does not apply it; it keeps the snapshots the leader sends after each
one it takes, and compacts its log to them. On winning an election the node
restores its newest snapshot, and the apply loop replays the log tail; until
the new term's no-op is applied (so every earlier committed entry is) the
node answers reads and writes ``unavailable`` and appends nothing. A node
that loses leadership stops applying, and winning again means restoring
again: Aurora's scheduler exited on losing leadership, so every failover
took the cold path, and a state half-applied under an older term is not
what a cold standby holds.

The restore records a ``restore`` digest at the snapshot's index, which the
old leader recorded as its ``snapshot`` digest, and the replayed tail
records ``apply`` digests at the indexes every leader records them: the
fidelity checker compares each with the old leader's at the same index.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger("squall.standby")
MODES = ("hot", "cold")
State = Literal["standby", "recovering", "serving"]


class Recovering(Exception):
    """This node leads but is still rebuilding its state; nothing was appended."""


class ColdStandby:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.state: State = "standby"
        self._term = -1  # the term whose state this node rebuilt
        self.recoveries = 0
        self.last: dict[str, Any] | None = None  # the newest recovery, for /status
        self._t0 = 0.0
        self._from = 0

    def check_serving(self) -> None:
        """Raises Recovering on a leader whose state is not rebuilt for its term yet."""
        raft = self.store.raft
        if raft.role == "leader" and (self._term != raft.term or self.state != "serving"):
            raise Recovering(
                f"{self.store.cfg.id} leads term {raft.term} but is still restoring its newest "
                "snapshot and replaying the log tail (cold standby); retry shortly"
            )

    async def may_apply(self, idle: float) -> bool:
        """Whether the apply loop may apply now; recovers first on a new term's win."""
        raft = self.store.raft
        if raft.role != "leader":
            if self.state != "standby":
                log.info("term %d: no longer leading; back to cold standby", raft.term)
            self.state, self._term = "standby", -1
            await raft.committed.wait(idle)  # a win is followed by its no-op's commit
            return False
        if self._term != raft.term:
            await self._restore(raft.term)
        if self.state == "recovering" and self.store.applied_index >= raft.noop_index:
            self._served()
        return True

    async def _restore(self, term: int) -> None:
        self.state, self._term = "recovering", term
        self._t0 = time.monotonic()
        store = self.store
        async with store._snap_lock:
            found = await asyncio.get_running_loop().run_in_executor(store.io, store.snaps.latest)
            if found is None:
                await store.on_writer(store.sm.open_empty)
            else:
                meta, payload = found
                await store.on_writer(store.sm.restore, meta.codec, payload, meta.index, meta.term)
        store.applied_index = store.sm.applied_index
        self._from = store.applied_index
        self.last = {
            "term": term,
            "snapshot_index": self._from,
            "codec": found[0].codec if found else None,
            "restore_ms": round((time.monotonic() - self._t0) * 1000, 1),
        }
        log.info(
            "term %d: cold standby restored snapshot %d in %.1f ms; replaying the log tail",
            term,
            self._from,
            self.last["restore_ms"],
        )

    def _served(self) -> None:
        self.state = "serving"
        self.recoveries += 1
        assert self.last is not None
        self.last["tail_entries"] = self.store.applied_index - self._from
        self.last["total_ms"] = round((time.monotonic() - self._t0) * 1000, 1)
        log.info(
            "term %d: recovered (snapshot %d + %d entries in %.1f ms); serving",
            self._term,
            self._from,
            self.last["tail_entries"],
            self.last["total_ms"],
        )

    def status(self) -> dict[str, Any]:
        return {
            "mode": "cold",
            "state": self.state,
            "recoveries": self.recoveries,
            "last": self.last,
        }
