"""The Raft log on disk: one append-only file of checksummed records.

Format (``raft.log``): a sequence of records, each ``>II`` (payload length,
CRC-32 of the payload) followed by the payload, UTF-8 JSON. The first record
is the base ``{"base": index, "term": term}``: the index and term of the last
entry compacted away (0, 0 for a fresh log). Every later record is one entry
``{"i": index, "t": term, "c": command}`` with consecutive indexes. Compaction
rewrites the file atomically with a new base; a conflicting suffix is cut off
with ``ftruncate``.

Appends are grouped: ``append`` only buffers; ``sync(index)`` writes and
fsyncs everything buffered so far in one system call pair, and callers that
arrive while an fsync runs share the next one. Every file operation is queued
on one I/O thread at the moment its bookkeeping changes, so the file sees
them in that order even when the coroutine that queued one is cancelled
(aiohttp cancels a handler whose client hung up): the waits are shielded, so
a cancel can neither unqueue a write nor skip a compaction's bookkeeping.

Reading: a record whose checksum or length is wrong is corruption and the
node refuses to start, with one exception: a torn *last* record, the trace of
a crash in the middle of an append, which is cut off (and logged). It was
never fsynced, so it was never acknowledged to anyone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import failpoints
from .diskwatch import DiskWatch
from .fsutil import DamagedData, fsync_fd, stop_now, write_atomic

log = logging.getLogger("squall.wal")
HEADER = struct.Struct(">II")
MAX_RECORD = 256 * 1024 * 1024


class CorruptLog(DamagedData):
    """The log file is damaged in a way a crash cannot explain."""


@dataclass(frozen=True)
class Entry:
    index: int
    term: int
    command: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"i": self.index, "t": self.term, "c": self.command}

    @staticmethod
    def from_json(d: dict[str, Any]) -> Entry:
        return Entry(int(d["i"]), int(d["t"]), d["c"])


def encode_record(obj: dict[str, Any]) -> bytes:
    payload = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def read_records(path: Path) -> tuple[list[dict[str, Any]], int, str | None]:
    """(records, length of the valid prefix, note about a torn tail or None). Raises CorruptLog."""
    data = path.read_bytes()
    out: list[dict[str, Any]] = []
    pos = 0
    while pos < len(data):
        start = pos
        if len(data) - pos < HEADER.size:
            return out, start, f"torn record header at byte {start} (end of file)"
        length, crc = HEADER.unpack_from(data, pos)
        pos += HEADER.size
        end = pos + length
        if length > MAX_RECORD or end > len(data):
            if length <= MAX_RECORD:  # runs past the end: the tail of an interrupted append
                return (
                    out,
                    start,
                    f"torn record at byte {start}: {length} bytes announced, {len(data) - pos} present",
                )
            raise CorruptLog(
                f"{path}: record at byte {start} announces {length} bytes (corrupt length)"
            )
        payload = data[pos:end]
        if zlib.crc32(payload) != crc:
            if end == len(data):
                return out, start, f"torn last record at byte {start} (checksum mismatch)"
            raise CorruptLog(
                f"{path}: checksum mismatch in the record at byte {start}; "
                "the log is damaged: restore the data dir from a peer or a backup"
            )
        try:
            out.append(json.loads(payload))
        except ValueError:
            raise CorruptLog(f"{path}: record at byte {start} is not JSON") from None
        pos = end
    return out, pos, None


class Wal:
    """The in-memory log plus its file. Indexes are Raft's: 1-based, contiguous after ``base``."""

    def __init__(self, path: Path, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        self.base_index = 0
        self.base_term = 0
        self.entries: list[Entry] = []
        self._offsets: list[int] = []  # file offset of each entry's record
        self._written = 0  # bytes handed to the file
        self._pending: list[bytes] = []
        self._pending_size = 0
        self.durable_index = 0
        self._io = ThreadPoolExecutor(1, thread_name_prefix="wal-io")
        self._lock = asyncio.Lock()
        self._fd: int | None = None
        self.disk = DiskWatch()  # shared with the node's other writers (system.store)

    # -- opening -------------------------------------------------------------
    def open(self) -> None:
        if not self.path.exists():
            write_atomic(self.path, [encode_record({"base": 0, "term": 0})], self.fsync)
        records, valid, torn = read_records(self.path)
        if torn:
            # A crash mid-append leaves exactly this; the record was never fsynced,
            # so no one was told it was stored. Cut it off and go on.
            log.warning("log %s: %s; truncating the torn tail", self.path, torn)
            os.truncate(self.path, valid)
        if not records or "base" not in records[0]:
            raise CorruptLog(f"{self.path}: the first record is not the log base")
        self.base_index, self.base_term = int(records[0]["base"]), int(records[0]["term"])
        offset = len(encode_record(records[0]))
        expected = self.base_index + 1
        for rec in records[1:]:
            e = Entry.from_json(rec)
            if e.index != expected:
                raise CorruptLog(
                    f"{self.path}: entry {e.index} found where {expected} was expected"
                )
            self.entries.append(e)
            self._offsets.append(offset)
            offset += len(encode_record(rec))
            expected += 1
        self._written = offset
        self.durable_index = self.last_index
        self._fd = os.open(self.path, os.O_WRONLY)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._io.shutdown(wait=True)

    # -- reading -------------------------------------------------------------
    @property
    def last_index(self) -> int:
        return self.base_index + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.base_term

    def term_at(self, index: int) -> int | None:
        if index == self.base_index:
            return self.base_term
        if index < self.base_index or index > self.last_index:
            return None
        return self.entries[index - self.base_index - 1].term

    def get(self, index: int) -> Entry:
        return self.entries[index - self.base_index - 1]

    def slice(self, start: int, max_count: int) -> list[Entry]:
        lo = start - self.base_index - 1
        return self.entries[lo : lo + max_count]

    # -- writing -------------------------------------------------------------
    def append(self, term: int, command: dict[str, Any]) -> Entry:
        e = Entry(self.last_index + 1, term, command)
        self._add(e)
        return e

    def _add(self, e: Entry) -> None:
        rec = encode_record(e.to_json())
        self._offsets.append(self._written + self._pending_size)
        self.entries.append(e)
        self._pending.append(rec)
        self._pending_size += len(rec)

    def truncate_from(self, index: int) -> None:
        """Drops entries ``index..`` (a conflicting suffix). Call with the I/O lock held."""
        if index > self.last_index:
            return
        if index <= self.base_index:
            raise ValueError(
                f"cannot truncate at {index}: entries up to {self.base_index} are compacted"
            )
        pos = index - self.base_index - 1
        cut = self._offsets[pos]
        del self.entries[pos:]
        del self._offsets[pos:]
        if cut >= self._written:  # only buffered records go
            keep = cut - self._written
            buf = b"".join(self._pending)[:keep]
            self._pending, self._pending_size = ([buf] if buf else []), len(buf)
        else:
            self._pending, self._pending_size = [], 0
            self._written = cut
            # Queued behind any write in flight, never beside it: the I/O thread runs in order.
            self._io.submit(self._ftruncate, cut)
        self.durable_index = min(self.durable_index, index - 1)

    async def extend(self, entries: list[Entry]) -> None:
        """Appends a leader's entries, dropping our conflicting suffix first (Raft's AppendEntries 3-4).

        Under the I/O lock: a truncate must not run while a write of the same
        bytes is in flight on the I/O thread.
        """
        async with self._lock:
            self._extend(entries)

    def _extend(self, entries: list[Entry]) -> None:
        for e in entries:
            if e.index <= self.base_index:
                continue
            have = self.term_at(e.index)
            if have == e.term:
                continue
            if have is not None:
                self.truncate_from(e.index)
            if e.index != self.last_index + 1:
                raise ValueError(f"gap: entry {e.index} after last index {self.last_index}")
            self._add(e)

    async def sync(self, index: int | None = None) -> None:
        """Returns once entries up to ``index`` (default: all) are on disk."""
        target = self.last_index if index is None else index
        while self.durable_index < min(target, self.last_index):
            async with self._lock:
                if self.durable_index >= min(target, self.last_index):
                    return
                data, upto = b"".join(self._pending), self.last_index
                self._pending, self._pending_size = [], 0
                self._written += len(data)  # now, so appends meanwhile get the right offsets
                # Shielded: cancelling the caller (aiohttp cancels the handler of a client
                # that hung up) must not cancel a write still queued behind a slow fsync.
                # Its bytes are counted in _written already; dropped, the next write would
                # land where they belong and leave a gap that refuses the node's restart.
                await asyncio.shield(asyncio.wrap_future(self._io.submit(self._write, data)))
                # a truncate may have run while we waited: never claim more than exists
                self.durable_index = max(self.durable_index, min(upto, self.last_index))

    def _ftruncate(self, size: int) -> None:
        assert self._fd is not None
        os.ftruncate(self._fd, size)

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        with self.disk.write():
            os.lseek(self._fd, 0, os.SEEK_END)
            view = memoryview(data)
            try:
                while view:
                    n = os.write(self._fd, view)
                    view = view[n:]
            except OSError as e:
                # Part of a record may be on disk now, and the next append would land
                # after it, in the middle of the file, where a torn record is damage.
                # Restarting cuts it off as the torn tail it is (a full disk: ENOSPC).
                stop_now(
                    f"writing {self.path} failed ({e.strerror or e}); part of a record may "
                    "be on disk, so the node stops (restart it once the disk takes writes)"
                )
            fsync_fd(self._fd, self.path, "wal.append.before-fsync", self.fsync)
            failpoints.hit("wal.append.after-fsync")

    async def compact(self, index: int, term: int) -> None:
        """Drops entries up to ``index`` (now held by a snapshot) by rewriting the file atomically."""
        await self.sync()
        # Shielded as a whole: a rewrite that ran while its bookkeeping did not would
        # leave the offsets of the old file, and a later truncate would cut the new one
        # at the wrong byte. The caller may be cancelled; the compaction is not.
        await asyncio.shield(self._compact(index, term))

    async def _compact(self, index: int, term: int) -> None:
        async with self._lock:
            if index <= self.base_index:
                return
            if self.term_at(index) == term:
                keep = self.entries[index - self.base_index :]
            else:  # the snapshot is ahead of or disagrees with our log: start over from it
                keep = []
            count = len(self.entries)
            # The rewrite holds every entry we have: what is buffered is in it too.
            self._pending, self._pending_size = [], 0
            records = [encode_record({"base": index, "term": term})]
            records += [encode_record(e.to_json()) for e in keep]
            await asyncio.get_running_loop().run_in_executor(self._io, self._rewrite, records)
            # Entries the leader appended while we rewrote are buffered, one record each.
            new = self.entries[count:]
            if new and not keep and new[0].index != index + 1:
                raise ValueError(
                    f"entries appended during a compaction to {index} do not follow it"
                )
            self.base_index, self.base_term = index, term
            self.entries = keep + new
            self._offsets = []
            off = 0
            for r in records + self._pending:
                if off:
                    self._offsets.append(off)
                off += len(r)
            self._written = sum(len(r) for r in records)
            self.durable_index = index + len(keep)

    def _rewrite(self, records: list[bytes]) -> None:
        write_atomic(self.path, records, self.fsync, point="wal.compact")
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY)
