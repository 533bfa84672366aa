"""One store replica: the log, Raft, the SQLite state and snapshots, wired together.

Threads: the event loop runs Raft and HTTP; the *writer* thread owns the
SQLite writer connection (apply, snapshot image, restore, digest); a reader
pool serves reads on their own connections; the log has its own I/O thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

# Domains register their tables and ops on import; this must happen before any
# state is opened (the schema is created from the registry) and before a digest is
# taken (it covers the registered tables), in the node and the offline tool alike.
from . import (
    bugs,
    failpoints,
    fsutil,
    scheduler,  # noqa: F401  (scheduler tables, ops and the rows codec)
    snapshots,
)
from .config import Config
from .fsutil import DamagedData, write_json_atomic
from .raft import Raft
from .signal import Signal
from .snapshots import SnapshotStore, make_meta
from .standby import ColdStandby
from .statemachine import StateMachine
from .wal import Entry, Wal

log = logging.getLogger("squall.store")
T = TypeVar("T")
APPLY_BATCH = 512
HINT_EVERY = 0.2  # seconds between commit-hint writes


class Indeterminate(Exception):
    """The write was appended but its fate is unknown (timeout, or the entry was replaced)."""


def open_state(
    data_dir: Path, digest_every: int, lossy: bool, fsync: bool, restore: bool = True
) -> tuple[Wal, StateMachine, SnapshotStore, dict[str, Any] | None]:
    """Recovery, shared by the node and the offline tool: newest snapshot, then the log tail.

    ``restore=False`` (a cold standby starting) opens an empty state beside the log and
    snapshots, reading only the newest snapshot's header: it rebuilds on winning.
    Raises CorruptLog / CorruptSnapshot / RuntimeError with a message saying what is damaged.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    wal = Wal(data_dir / "raft.log", fsync)
    wal.open()
    snaps = SnapshotStore(data_dir / "snapshots", fsync)
    sm = StateMachine(data_dir, digest_every, bugs.LOSSY_LAG if lossy else 0)
    if not restore:
        return wal, sm, snaps, _cold_open(wal, sm, snaps)
    found = snaps.latest()
    failpoints.hit("restore.before")
    last: dict[str, Any] | None = None
    if found is None:
        if wal.base_index > 0:
            raise DamagedData(
                f"the log starts after index {wal.base_index} but no snapshot holds the entries "
                "before it; the data dir is incomplete"
            )
        sm.open_empty()
    else:
        meta, payload = found
        if meta.index < wal.base_index:
            raise DamagedData(
                f"the newest snapshot (index {meta.index}) is older than the log's start "
                f"({wal.base_index}); entries in between are lost"
            )
        t0 = time.monotonic()
        sm.restore(meta.codec, payload, meta.index, meta.term)
        ms = (time.monotonic() - t0) * 1000
        log.info(
            "restored snapshot %d (term %d, %s, %d bytes) in %.1f ms",
            meta.index,
            meta.term,
            meta.codec,
            meta.bytes,
            ms,
        )
        last = {
            "index": meta.index,
            "term": meta.term,
            "codec": meta.codec,
            "bytes": meta.bytes,
            "ms": round(ms, 2),
        }
    # Replay what is known committed: entries up to the last applied index we recorded.
    hint = read_hint(data_dir)
    upto = min(hint, wal.last_index)
    if upto > sm.applied_index:
        sm.apply(wal.slice(sm.applied_index + 1, upto - sm.applied_index))
        log.info("replayed the log up to index %d", upto)
    failpoints.hit("restore.after")
    return wal, sm, snaps, last


def _cold_open(wal: Wal, sm: StateMachine, snaps: SnapshotStore) -> dict[str, Any] | None:
    """An empty state, and the newest snapshot's header, checked against the log's start."""
    meta = snaps.latest_meta()
    if (meta.index if meta else 0) < wal.base_index:
        raise DamagedData(
            f"the log starts after index {wal.base_index} but the newest snapshot holds only "
            f"{meta.index if meta else 'nothing'}; entries in between are lost"
        )
    sm.open_empty()
    if meta is None:
        return None
    return {
        "index": meta.index,
        "term": meta.term,
        "codec": meta.codec,
        "bytes": meta.bytes,
        "ms": 0.0,
    }


def read_hint(data_dir: Path) -> int:
    try:
        return int(json.loads((data_dir / "commit-hint.json").read_text())["index"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


class Store:
    def __init__(self, cfg: Config, secret: bytes | None = None) -> None:
        self.cfg = cfg
        self.secret = secret  # the cluster secret (peerauth): peers and admins sign with it
        self.fsync = bugs.NO_FSYNC not in cfg.bugs  # bugs.NO_FSYNC
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self.readers = ThreadPoolExecutor(4, thread_name_prefix="sqlite-reader")
        self.io = ThreadPoolExecutor(1, thread_name_prefix="snapshot-io")
        fsutil.forgive_fsync = bugs.FORGIVE_FSYNC in cfg.bugs  # bugs.FORGIVE_FSYNC
        failpoints.arm_from(cfg.data_dir)  # before open_state: restore.* fire in it
        self.wal, self.sm, self.snaps, self.last_snapshot = open_state(
            cfg.data_dir,
            cfg.digest_every,
            bugs.LOSSY_SNAPSHOT in cfg.bugs,
            self.fsync,
            restore=cfg.standby != "cold",
        )
        self.snaps.rename_first = bugs.RENAME_BEFORE_FSYNC in cfg.bugs
        self.sm.disk = self.wal.disk  # one watch over all of this node's writes
        self.raft = Raft(cfg, self.wal, cfg.data_dir / "raft-meta.json", self.fsync, secret)
        self.raft.load_meta()
        self.raft.commit_index = self.sm.applied_index
        self.raft.snapshot_blob = self._snapshot_blob
        self.raft.install_snapshot = self._install_snapshot
        self.applied = Signal()
        self.applied_index = self.sm.applied_index
        self.snapshot_in_progress = False
        self._snap_lock = asyncio.Lock()
        self._waiters: dict[int, tuple[int, asyncio.Future[Any]]] = {}
        self._applier: asyncio.Task[None] | None = None
        self._hint_at = 0.0
        self.failed = asyncio.Event()  # set when the node must stop (see failure)
        self.failure: str | None = None
        self._hint_index = -1
        # standby: cold (standby.py): followers keep the log and snapshots, not live state
        self.standby = ColdStandby(self) if cfg.standby == "cold" else None

    async def start(self) -> None:
        await self.raft.start()
        self._applier = asyncio.ensure_future(self._apply_loop())

    async def stop(self) -> None:
        if self._applier:
            self._applier.cancel()
            with contextlib.suppress(BaseException):
                await self._applier
        await self.raft.stop()
        await self.on_writer(self.sm.close)
        self.wal.close()
        for pool in (self.writer, self.readers, self.io):
            pool.shutdown(wait=False)

    async def on_writer(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.writer, fn, *args)

    async def on_reader(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.readers, fn, *args)

    # -- applying --------------------------------------------------------------
    async def _apply_loop(self) -> None:
        try:
            await self._apply_forever()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # An entry that cannot be applied here may apply elsewhere: going on would
            # let this replica's state diverge, and stalling would hide it. Stop loudly.
            log.critical(
                "applying entry %d failed; stopping the node",
                self.sm.applied_index + 1,
                exc_info=True,
            )
            self.failure = (
                f"apply of entry {self.sm.applied_index + 1} failed: {type(e).__name__}: {e}"
            )
            self.failed.set()

    async def _apply_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self.standby is not None and not await self.standby.may_apply(HINT_EVERY):
                continue
            target = min(self.raft.commit_index, self.wal.last_index)
            start = self.sm.applied_index + 1
            if target < start:
                if self._hint_index != self.applied_index:  # idle: let the hint catch up
                    self._write_hint()
                await self.raft.committed.wait(HINT_EVERY)
                continue
            batch = self.wal.slice(start, min(APPLY_BATCH, target - start + 1))
            results = await self.on_writer(self._apply, batch)
            self.applied_index = self.sm.applied_index
            for e, result in results:
                w = self._waiters.pop(e.index, None)
                if w and not w[1].done():
                    if w[0] == e.term:
                        w[1].set_result(result)
                    else:
                        w[1].set_exception(Indeterminate())
            self.applied.notify()
            if loop.time() - self._hint_at > HINT_EVERY:
                self._write_hint()
            every = self.cfg.snapshot_every
            if (
                every
                and self.applied_index - self._snapshot_index() >= every
                and not self.snapshot_in_progress
                and self.serving()
            ):
                asyncio.ensure_future(self.snapshot())

    def serving(self) -> bool:
        """False while a cold standby rebuilds its state (it takes no snapshot meanwhile)."""
        return self.standby is None or self.standby.state == "serving"

    def check_serving(self) -> None:
        """Raises standby.Recovering on a leader still rebuilding its state (cold standby)."""
        if self.standby is not None:
            self.standby.check_serving()

    def _apply(self, batch: list[Entry]) -> list[tuple[Entry, Any]]:
        failpoints.hit("apply.before")
        results = self.sm.apply(batch)
        failpoints.hit("apply.after")
        return results

    def _write_hint(self) -> None:
        """Records the applied index (no fsync: a hint). Restart replays the log up to it at once."""
        loop = asyncio.get_running_loop()
        self._hint_at, self._hint_index = loop.time(), self.applied_index
        loop.run_in_executor(
            self.io,
            write_json_atomic,
            self.cfg.data_dir / "commit-hint.json",
            {"index": self.applied_index},
            False,
        )

    def _snapshot_index(self) -> int:
        return self.last_snapshot["index"] if self.last_snapshot else 0

    async def submit(self, command: dict[str, Any], timeout: float) -> tuple[int, Any]:
        """Appends a command (leader only); returns (its index, its result) once applied.

        Raises NotLeader before anything is appended; Indeterminate after.
        """
        self.check_serving()
        entry = self.raft.propose(command)
        if bugs.EARLY_ACK in self.cfg.bugs and command.get("op") == "kv.put":
            return entry.index, {
                "ok": True
            }  # bugs.EARLY_ACK: acknowledged before a majority has it
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[entry.index] = (entry.term, fut)
        try:
            return entry.index, await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise Indeterminate() from None
        finally:
            self._waiters.pop(entry.index, None)

    async def wait_applied(self, index: int, timeout: float) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        return await self.applied.wait_until(lambda: self.applied_index >= index, deadline)

    # -- snapshots ---------------------------------------------------------------
    async def snapshot(self) -> dict[str, Any]:
        async with self._snap_lock:
            self.snapshot_in_progress = True
            try:
                t0 = time.monotonic()
                codec = self.cfg.snapshot_codec
                index, term, payload, digest = await self.on_writer(self.sm.image, codec)
                meta = make_meta(index, term, codec, payload)
                if index > self._snapshot_index():
                    await asyncio.get_running_loop().run_in_executor(
                        self.io, self.snaps.write, meta, payload
                    )
                    self.sm.digests.record("snapshot", index, digest)
                    await self.wal.compact(index, term)
                    if self.standby is not None:  # the followers keep it for their own win
                        asyncio.ensure_future(self.raft.offer_snapshot())
                ms = (time.monotonic() - t0) * 1000
                log.info("snapshot at %d (%d bytes, %.1f ms)", index, meta.bytes, ms)
                return self._note_snapshot(meta, ms)
            finally:
                self.snapshot_in_progress = False

    def _note_snapshot(self, meta: snapshots.SnapshotMeta, ms: float = 0.0) -> dict[str, Any]:
        """What /status says of the newest snapshot taken, installed or kept."""
        self.last_snapshot = {
            "index": meta.index,
            "term": meta.term,
            "codec": meta.codec,
            "bytes": meta.bytes,
            "ms": round(ms, 2),
        }
        return self.last_snapshot

    async def _snapshot_blob(self) -> bytes | None:
        return await asyncio.get_running_loop().run_in_executor(self.io, self.snaps.latest_blob)

    async def _install_snapshot(self, blob: bytes) -> int:
        # Shielded: a leader that gives up waiting must not leave the state restored
        # but the log not reset (or the reverse) here.
        return await asyncio.shield(self._install(blob))

    async def _install(self, blob: bytes) -> int:
        meta, payload = snapshots.parse(blob, "snapshot from the leader")
        if self.standby is not None and self.raft.role != "leader":
            return await self._keep(meta, blob)
        if meta.index <= self.sm.applied_index:
            return self.sm.applied_index
        await failpoints.ahit("snapshot.install.received")
        async with self._snap_lock:
            self.snapshot_in_progress = True
            try:
                # Restored (and so verified) before it is kept: a snapshot that is no sound
                # state raises here, and the node's own state, snapshots and log stay as
                # they were. A crash between the two leaves the old snapshot and the
                # uncompacted log, from which the node rebuilds its state on start.
                await self.on_writer(self.sm.restore, meta.codec, payload, meta.index, meta.term)
                await failpoints.ahit("snapshot.install.restored")
                await asyncio.get_running_loop().run_in_executor(
                    self.io, self.snaps.write, meta, payload
                )
                await self.wal.compact(meta.index, meta.term)
                self.applied_index = self.sm.applied_index
                self._note_snapshot(meta)
                log.info("installed the leader's snapshot at %d", meta.index)
            finally:
                self.snapshot_in_progress = False
        self.applied.notify()
        return meta.index

    async def _keep(self, meta: snapshots.SnapshotMeta, blob: bytes) -> int:
        """A cold standby keeps the leader's snapshot (checksummed by parse) and compacts its
        log to it, without restoring it: it rebuilds state from it only on winning."""
        if meta.index <= self._snapshot_index():
            return meta.index
        payload = blob[blob.index(b"\n") + 1 :]
        async with self._snap_lock:
            await asyncio.get_running_loop().run_in_executor(
                self.io, self.snaps.write, meta, payload
            )
            await self.wal.compact(meta.index, meta.term)
            self._note_snapshot(meta)
        log.info("kept the leader's snapshot at %d (cold standby)", meta.index)
        return meta.index

    # -- observation ---------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        r = self.raft
        return {
            "id": self.cfg.id,
            "role": r.role,
            "term": r.term,
            "leader": r.leader_id,
            "commit_index": r.commit_index,
            "applied_index": self.applied_index,
            "last_snapshot": self.last_snapshot,
            "snapshot_in_progress": self.snapshot_in_progress,
            "sending_snapshot": sorted(r.sending_snapshot),
            "snapshot_codec": self.cfg.snapshot_codec,
            "standby": self.standby.status() if self.standby is not None else {"mode": "hot"},
            "bugs": sorted(self.cfg.bugs),
            "failpoints": {"armed": failpoints.armed(), "hits": failpoints.hits()},
            "log": {"first_index": self.wal.base_index + 1, "last_index": self.wal.last_index},
        }
