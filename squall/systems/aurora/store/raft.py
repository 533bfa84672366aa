"""Raft consensus: election, log replication, commitment, check-quorum and ReadIndex.

The paper's rules, with the choices that matter for this store:

* Term and vote are persisted (fsync) before any vote is granted or any
  request sent in a new term; log entries are fsynced before a follower says
  it has them. The leader's own entries count toward a majority only once
  fsynced (``match`` of self = the log's durable index).
* A new leader appends a no-op: it cannot know which entries of earlier terms
  are committed until one of its own term is (§5.4.2), and ReadIndex needs it.
* Check-quorum: a leader that has not heard from a majority within the
  longest election timeout steps down, so a partitioned leader stops acting as
  one. Followers that heard from a live leader within the shortest timeout
  refuse votes (leader stickiness), so a node coming back from a partition
  with a higher term cannot depose a working leader by asking for votes.
* Disk step-down: a leader whose disk write (log fsync, state commit, term
  file) has waited longer than the longest election timeout steps down, and
  a node with a write stuck does not campaign (``system.diskwatch``): it can
  still heartbeat, so without this nobody would replace it.
* ReadIndex: a read waits until the leader's no-op is committed, takes the
  commit index, then until a majority acknowledged an AppendEntries *sent
  after* the read arrived: only then is it certain no newer leader existed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from . import peerauth
from .config import Config
from .fsutil import DamagedData, write_json_atomic
from .signal import Signal
from .wal import Entry, Wal

log = logging.getLogger("squall.raft")
MAX_BATCH = 256  # entries per AppendEntries
# ... and bytes: a follower refuses a peer body past a bound (limits.py), so a batch of
# large entries is cut short rather than sent whole (one entry always goes, whatever its size).
BATCH_BYTES = 4 << 20


def meta_crc(term: Any, vote: Any) -> int:
    """The checksum of the term/vote file's values."""
    return zlib.crc32(json.dumps([term, vote]).encode())


class NotLeader(Exception):
    def __init__(self, leader: str | None) -> None:
        super().__init__(leader)
        self.leader = leader


class Raft:
    def __init__(
        self,
        cfg: Config,
        wal: Wal,
        meta_path: Path,
        fsync: bool = True,
        secret: bytes | None = None,
    ) -> None:
        self.cfg = cfg
        self.secret = secret  # signs every RPC (peerauth); None only for a node without peers
        self.id = cfg.id
        self.peers = cfg.peer_ids()
        self.wal = wal
        self.meta_path = meta_path
        self.fsync = fsync
        self.disk = wal.disk  # every write of this node registers there (system.diskwatch)
        self.term: int = 0
        self.voted_for: str | None = None
        self._persisted: tuple[int, str | None] = (0, None)
        self.role = "follower"
        self.leader_id: str | None = None
        self.commit_index = 0
        self.committed = Signal()  # commit_index advanced
        self.acked = Signal()  # a peer acknowledged an AppendEntries
        self._rng = random.Random()
        self._last_contact = 0.0
        # When a leader was last heard from (append or snapshot accepted). Kept apart
        # from _last_contact, which our own election timer also resets: a follower
        # whose timer just fired has heard from no leader, and must not refuse the
        # others' pre-votes as if it had (it made elections after a leader pause take
        # several seconds: each node's own timer kept it "sticky").
        self._leader_contact = float("-inf")
        self._timeout = 0.0
        self._meta_lock = asyncio.Lock()
        self._append_lock = asyncio.Lock()
        self._leader_tasks: list[asyncio.Task[None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.next_index: dict[str, int] = {}
        self.match_index: dict[str, int] = {}
        self.sending_snapshot: set[str] = set()  # peers an InstallSnapshot is in flight to
        self.ack_time: dict[str, float] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._appended = asyncio.Event()
        self.noop_index = 0
        self.session: aiohttp.ClientSession | None = None
        # hooks the node provides: snapshot bytes to send, and installing a received one
        self.snapshot_blob: Callable[[], Awaitable[bytes | None]] | None = None
        self.install_snapshot: Callable[[bytes], Awaitable[int]] | None = None

    # -- lifecycle -----------------------------------------------------------
    def load_meta(self) -> None:
        if self.meta_path.exists():
            try:
                m = json.loads(self.meta_path.read_text())
                # A file of a store before the checksum has exactly these two keys (one
                # flipped bit cannot make a "crc" key vanish and leave exactly them).
                legacy = set(m) == {"term", "vote"}
                if not legacy and m.get("crc") != meta_crc(m["term"], m["vote"]):
                    # A flipped bit can leave valid JSON with another term (5 -> 4): a
                    # node that believed it would vote twice in one term.
                    raise ValueError("its checksum does not match")
                self.term, self.voted_for = int(m["term"]), m["vote"]
                self._persisted = (self.term, self.voted_for)
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise DamagedData(
                    f"{self.meta_path} is damaged ({e}); the node cannot know its term and "
                    "vote: remove the data dir to rejoin from the leader"
                ) from None

    async def start(self) -> None:
        # No DNS cache: a restarted container may come back at another address,
        # possibly one another peer held before (see _rpc).
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, use_dns_cache=False)
        )
        self._reset_timer()
        self._tasks.append(asyncio.ensure_future(self._ticker()))

    async def stop(self) -> None:
        for t in self._tasks + self._leader_tasks:
            t.cancel()
        for t in self._tasks + self._leader_tasks:
            with contextlib.suppress(BaseException):
                await t
        if self.session is not None:
            await self.session.close()

    @property
    def majority(self) -> int:
        return (len(self.peers) + 1) // 2 + 1

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _reset_timer(self) -> None:
        lo, hi = self.cfg.election_timeout_ms
        self._last_contact = self._now()
        self._timeout = self._rng.uniform(lo, hi) / 1000

    async def _persist(self) -> None:
        # Shielded: a vote handler cancelled mid-write (its caller hung up) would
        # release the lock while its thread still writes the temporary file, and
        # the next persist would race it for the same name.
        await asyncio.shield(self._persist_locked())

    async def _persist_locked(self) -> None:
        async with (
            self._meta_lock
        ):  # writes the newest values, so a late writer never regresses them
            term, vote = self.term, self.voted_for
            value = {"term": term, "vote": vote, "crc": meta_crc(term, vote)}
            await asyncio.get_running_loop().run_in_executor(None, self._write_meta, value)
            self._persisted = (term, vote)

    def _write_meta(self, value: dict[str, Any]) -> None:
        with self.disk.write():
            write_json_atomic(self.meta_path, value, self.fsync, point="meta")

    # -- roles ---------------------------------------------------------------
    def _become_follower(self, term: int, leader: str | None) -> None:
        if term > self.term:
            self.term, self.voted_for = term, None
        if self.role != "follower":
            log.info("term %d: %s -> follower (leader %s)", self.term, self.role, leader)
        self.role = "follower"
        self.leader_id = leader
        self._stop_leader_tasks()

    def _stop_leader_tasks(self) -> None:
        for t in self._leader_tasks:
            t.cancel()
        self._leader_tasks = []

    async def _ticker(self) -> None:
        tick = min(0.01, self.cfg.heartbeat_ms / 5000)
        while True:
            await asyncio.sleep(tick)
            now = self._now()
            if self.role == "leader":
                self._check_quorum(now)
                self._check_disk()
            elif self.disk.stalled_for() > self.cfg.heartbeat_ms * 2 / 1000:
                continue  # a node that cannot write cannot lead: no campaign until its disk answers
            elif now - self._last_contact >= self._timeout:
                self._reset_timer()
                self._tasks = [t for t in self._tasks if not t.done()]
                self._tasks.append(asyncio.ensure_future(self._election()))

    def _check_quorum(self, now: float) -> None:
        if not self.peers:
            return
        recent = sorted((self.ack_time[p] for p in self.peers), reverse=True)
        # the majority-th most recent contact, counting ourselves as "now"
        if now - recent[self.majority - 2] > self.cfg.election_timeout_ms[1] / 1000:
            log.warning(
                "term %d: no majority heard for %.0f ms, stepping down",
                self.term,
                (now - recent[self.majority - 2]) * 1000,
            )
            self._become_follower(self.term, None)
            self._reset_timer()

    def _check_disk(self) -> None:
        stalled = self.disk.stalled_for()
        if self.role == "leader" and stalled > self.cfg.election_timeout_ms[1] / 1000:
            log.warning(
                "term %d: a disk write has waited %.0f ms, stepping down", self.term, stalled * 1000
            )
            self._become_follower(self.term, None)
            self._reset_timer()

    async def _election(self) -> None:
        # Pre-vote first (Raft thesis §9.6): ask whether we could win without raising
        # any term, so a node back from a pause or a partition cannot depose a live leader.
        if not await self._poll(pre=True):
            return
        self.term += 1
        self.role, self.voted_for, self.leader_id = "candidate", self.id, None
        term = self.term
        await self._persist()
        if self.term != term or self.role != "candidate":
            return
        log.info("term %d: election started", term)
        if await self._poll(pre=False) and self.term == term and self.role == "candidate":
            self._become_leader()

    async def _poll(self, pre: bool) -> bool:
        """True once a majority grants the (pre-)vote, False on a loss or a change of term/role."""
        term, role = self.term, self.role
        req = {
            "term": term + 1 if pre else term,
            "candidate": self.id,
            "last_index": self.wal.last_index,
            "last_term": self.wal.last_term,
            "pre": pre,
        }
        votes = 1
        if votes >= self.majority:
            return True
        pending = [asyncio.ensure_future(self._rpc(p, "/raft/vote", req)) for p in self.peers]
        try:
            for fut in asyncio.as_completed(pending):
                resp = await fut
                if self.term != term or self.role != role:
                    return False
                if resp is None:
                    continue
                if await self._newer_term(resp):
                    return False
                if resp.get("granted"):
                    votes += 1
                    if votes >= self.majority:
                        return True
            return False
        finally:
            for p in pending:
                p.cancel()

    def _become_leader(self) -> None:
        log.info("term %d: elected leader", self.term)
        self.role, self.leader_id = "leader", self.id
        now = self._now()
        for p in self.peers:
            self.next_index[p] = self.wal.last_index + 1
            self.match_index[p] = 0
            self.ack_time[p] = now  # a grace period of one timeout before check-quorum bites
            self._wake[p] = asyncio.Event()
        self.noop_index = self.wal.append(self.term, {"op": "noop"}).index
        self._leader_tasks = [
            asyncio.ensure_future(self._replicate(p, self.term)) for p in self.peers
        ]
        self._leader_tasks.append(asyncio.ensure_future(self._sync_own_log(self.term)))
        self._appended.set()

    # -- the leader's side ---------------------------------------------------
    def propose(self, command: dict[str, Any]) -> Entry:
        if self.role != "leader":
            raise NotLeader(self.leader_id)
        e = self.wal.append(self.term, command)
        self._appended.set()
        for ev in self._wake.values():
            ev.set()
        return e

    async def _sync_own_log(self, term: int) -> None:
        while self.role == "leader" and self.term == term:
            await self._appended.wait()
            self._appended.clear()
            try:
                await self.wal.sync()
            except OSError as e:  # reached only when forgiven (bugs.FORGIVE_FSYNC): retry later
                log.error("term %d: log sync failed (%s); carrying on", term, e)
                self._appended.set()
                await asyncio.sleep(self.cfg.heartbeat_ms / 1000)
            self._advance_commit()

    def _advance_commit(self) -> None:
        if self.role != "leader":
            return
        matches = sorted(
            [self.wal.durable_index] + [self.match_index[p] for p in self.peers], reverse=True
        )
        n = matches[self.majority - 1]
        if n > self.commit_index and self.wal.term_at(n) == self.term:
            self.commit_index = n
            self.committed.notify()

    async def _replicate(self, peer: str, term: int) -> None:
        hb = self.cfg.heartbeat_ms / 1000
        while self.role == "leader" and self.term == term:
            self._wake[peer].clear()
            sent_at = self._now()
            if self.next_index[peer] <= self.wal.base_index:
                ok = await self._send_snapshot(peer, term)
            else:
                ok = await self._send_append(peer, term)
            if self.role != "leader" or self.term != term:
                return
            if ok:
                self.ack_time[peer] = max(self.ack_time[peer], sent_at)
                self.acked.notify()
            if ok and self.next_index[peer] <= self.wal.last_index:
                continue  # more to send: no waiting
            if not ok:
                # A peer that is down or cut off: retry at the heartbeat, not at every new
                # entry's wake-up (a leader re-read and re-sent a snapshot to a killed peer
                # 20 times in 300 ms).
                await asyncio.sleep(hb)
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake[peer].wait(), hb)

    async def _send_append(self, peer: str, term: int) -> bool:
        ni = self.next_index[peer]
        encoded: list[str] = []
        size = 0
        for e in self.wal.slice(ni, MAX_BATCH):
            text = json.dumps(e.to_json(), separators=(",", ":"))
            if encoded and size + len(text) > BATCH_BYTES:
                break
            encoded.append(text)
            size += len(text)
        head = {
            "term": term,
            "leader": self.id,
            "prev_index": ni - 1,
            "prev_term": self.wal.term_at(ni - 1),
            "commit": self.commit_index,
        }
        # Each entry serialized once: its size decides the batch, its text is the body.
        body = json.dumps(head, separators=(",", ":"))[:-1] + ',"entries":[' + ",".join(encoded)
        resp = await self._rpc(peer, "/raft/append", (body + "]}").encode())
        if resp is None or await self._newer_term(resp):
            return False
        if resp["success"]:
            self._matched(peer, resp["match"])
        else:
            self.next_index[peer] = max(1, min(self.next_index[peer] - 1, resp.get("hint", ni - 1)))
        return True

    async def _send_snapshot(self, peer: str, term: int) -> bool:
        blob = await self.snapshot_blob() if self.snapshot_blob else None
        if blob is None:
            return False
        log.info("term %d: sending snapshot to %s (%d bytes)", term, peer, len(blob))
        self.sending_snapshot.add(peer)
        try:
            resp = await self._rpc(
                peer, "/raft/snapshot", blob, {"term": str(term), "leader": self.id}, timeout=30
            )
        finally:
            self.sending_snapshot.discard(peer)
        if resp is None or await self._newer_term(resp):
            return False
        self._matched(peer, resp["match"])
        return True

    async def _newer_term(self, resp: dict[str, Any]) -> bool:
        """Steps down if a peer answered from a newer term (then True)."""
        if resp["term"] <= self.term:
            return False
        self._become_follower(resp["term"], None)
        await self._persist()
        return True

    def _matched(self, peer: str, match: int) -> None:
        self.match_index[peer] = max(self.match_index[peer], match)
        self.next_index[peer] = self.match_index[peer] + 1
        self._advance_commit()

    async def _rpc(
        self,
        peer: str,
        route: str,
        body: Any,
        query: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """POSTs to a peer, signed; None on any failure (the peer may be down, paused or cut off)."""
        assert self.session is not None
        t = aiohttp.ClientTimeout(total=timeout or max(1.0, self.cfg.election_timeout_ms[1] / 1000))
        # Every RPC names its addressee, and a node refuses one meant for another:
        # after containers restart, a pooled connection (or a stale name lookup) can
        # reach a different peer at the old address, whose answer would otherwise be
        # counted as this peer's (two votes or acks from one node: no majority at all).
        params = {**(query or {}), "to": peer}
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        signed = (
            peerauth.headers(self.secret, self.id, peer, route, params, data) if self.secret else {}
        )
        try:
            r = await self.session.post(
                f"{self.cfg.peers[peer]}{route}",
                params=params,
                data=data,
                headers=signed,
                timeout=t,
            )
            async with r:
                if r.status != 200:
                    r.close()  # not back to the pool: it may lead to the wrong node
                    return None
                return await r.json()
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return None

    async def read_index(self, timeout: float) -> int:
        """The commit index a linearizable read may be served at (raises NotLeader / TimeoutError)."""
        if self.role != "leader":
            raise NotLeader(self.leader_id)
        term, loop = self.term, asyncio.get_running_loop()
        deadline = loop.time() + timeout

        def still_leader() -> bool:
            if self.role != "leader" or self.term != term:
                raise NotLeader(self.leader_id)
            return True

        if not await self.committed.wait_until(
            lambda: still_leader() and self.commit_index >= self.noop_index, deadline
        ):
            raise TimeoutError
        index, asked = self.commit_index, loop.time()
        for ev in self._wake.values():
            ev.set()

        def confirmed() -> bool:
            still_leader()
            return 1 + sum(1 for p in self.peers if self.ack_time[p] >= asked) >= self.majority

        if not await self.acked.wait_until(confirmed, deadline):
            raise TimeoutError
        return index

    # -- the follower's side (RPC handlers) ------------------------------------
    async def on_vote(self, req: dict[str, Any]) -> dict[str, Any]:
        term, cand = int(req["term"]), str(req["candidate"])
        lo = self.cfg.election_timeout_ms[0] / 1000
        sticky = self.role == "leader" or (
            self.leader_id is not None and self._now() - self._leader_contact < lo
        )
        mine = (self.wal.last_term, self.wal.last_index)
        up_to_date = (int(req["last_term"]), int(req["last_index"])) >= mine
        if req.get("pre"):  # a pre-vote changes nothing here
            return {"term": self.term, "granted": term > self.term and up_to_date and not sticky}
        if term < self.term or (sticky and term > self.term):
            return {"term": self.term, "granted": False}
        if term > self.term:
            self._become_follower(term, None)
        granted = up_to_date and self.voted_for in (None, cand)
        if granted:
            self.voted_for = cand
            self._reset_timer()
        await self._persist()
        return {"term": self.term, "granted": granted}

    def _accept_leader(self, term: int, leader: str) -> bool:
        """Common to append and snapshot: False if the sender is stale; else follows it."""
        if term < self.term:
            return False
        changed = term > self.term
        if changed or self.role != "follower" or self.leader_id != leader:
            self._become_follower(term, leader)
            if changed:
                log.info("term %d: following %s", term, leader)
        self._reset_timer()
        self._leader_contact = self._now()
        return True

    async def on_append(self, req: dict[str, Any]) -> dict[str, Any]:
        term = int(req["term"])
        if not self._accept_leader(term, str(req["leader"])):
            return {"term": self.term, "success": False}
        await self._persist_if_needed()
        async with self._append_lock:
            prev_i, prev_t = int(req["prev_index"]), req["prev_term"]
            entries = [Entry.from_json(e) for e in req["entries"]]
            if prev_i >= self.wal.base_index and self.wal.term_at(prev_i) != prev_t:
                return {"term": self.term, "success": False, "hint": self._conflict_hint(prev_i)}
            await self.wal.extend(entries)
            match = max(prev_i + len(entries), self.wal.base_index)
            await self.wal.sync(match)
            if self.term != term:
                return {"term": self.term, "success": False}
            commit = min(int(req["commit"]), match)
            if commit > self.commit_index:
                self.commit_index = commit
                self.committed.notify()
            return {"term": self.term, "success": True, "match": match}

    async def _persist_if_needed(self) -> None:
        if (self.term, self.voted_for) != self._persisted:
            await self._persist()

    def _conflict_hint(self, prev_i: int) -> int:
        if prev_i > self.wal.last_index:
            return self.wal.last_index + 1
        t = self.wal.term_at(prev_i)
        i = prev_i
        while i - 1 > self.wal.base_index and self.wal.term_at(i - 1) == t:
            i -= 1
        return i

    async def on_snapshot(self, term: int, leader: str, blob: bytes) -> dict[str, Any]:
        if not self._accept_leader(term, leader):
            return {"term": self.term, "match": 0}
        await self._persist_if_needed()
        async with self._append_lock:
            assert self.install_snapshot is not None
            index = await self.install_snapshot(blob)
            self.commit_index = max(self.commit_index, index)
            self.committed.notify()
            return {"term": self.term, "match": index}

    async def offer_snapshot(self, attempts: int = 4) -> None:
        """Sends the newest snapshot to every peer now (cold standby: a follower keeps the
        leader's snapshots to rebuild from, since it applies nothing itself). A peer that
        did not take it (down, busy restoring) is offered it again, a few times, with
        backoff; one that never does keeps its older snapshot and a longer log tail."""
        term, todo = self.term, list(self.peers)
        for attempt in range(attempts):
            if self.role != "leader" or self.term != term or not todo:
                return
            sent = await asyncio.gather(*(self._send_snapshot(p, term) for p in todo))
            todo = [p for p, ok in zip(todo, sent, strict=True) if not ok]
            await asyncio.sleep(self.cfg.heartbeat_ms / 1000 * 4**attempt)
