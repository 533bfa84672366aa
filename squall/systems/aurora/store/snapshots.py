"""Snapshot files: ``snapshots/snap-<index>.snap``, a JSON header line then the codec's bytes.

Header: ``{"format": "squall-snapshot/1", "index", "term", "codec", "bytes",
"sha256"}`` (the checksum covers the payload). Written atomically (temp file,
fsync, rename, fsync dir), so a kill mid-write leaves a ``.tmp`` that is
ignored. A renamed file that fails its checksum is damage, not a crash: the
node refuses to start rather than restore from an older snapshot whose
following entries the log no longer holds.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fsutil import DamagedData, write_atomic

log = logging.getLogger("squall.snapshots")
FORMAT = "squall-snapshot/1"
KEEP = 2


class CorruptSnapshot(DamagedData):
    """A snapshot file is damaged; the message names it and what to do."""


@dataclass(frozen=True)
class SnapshotMeta:
    index: int
    term: int
    codec: str
    bytes: int
    sha256: str

    def header(self) -> builtins.bytes:
        d = {
            "format": FORMAT,
            "index": self.index,
            "term": self.term,
            "codec": self.codec,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }
        return json.dumps(d, sort_keys=True).encode() + b"\n"


def make_meta(index: int, term: int, codec: str, payload: bytes) -> SnapshotMeta:
    return SnapshotMeta(index, term, codec, len(payload), hashlib.sha256(payload).hexdigest())


def parse_header(line: bytes, source: str) -> SnapshotMeta:
    """A snapshot file's first line. Raises CorruptSnapshot."""
    try:
        h: dict[str, Any] = json.loads(line) if line.strip() else {}
        meta = SnapshotMeta(
            int(h["index"]), int(h["term"]), str(h["codec"]), int(h["bytes"]), str(h["sha256"])
        )
        if h.get("format") != FORMAT:
            raise ValueError(f"format {h.get('format')!r}")
    except (ValueError, KeyError, TypeError) as e:
        raise CorruptSnapshot(f"{source}: unreadable snapshot header ({e})") from None
    return meta


def parse(blob: bytes, source: str) -> tuple[SnapshotMeta, bytes]:
    """Splits and verifies a snapshot file's bytes. Raises CorruptSnapshot."""
    nl = blob.find(b"\n")
    meta = parse_header(blob[:nl] if nl > 0 else b"", source)
    payload = blob[nl + 1 :]
    if len(payload) != meta.bytes or hashlib.sha256(payload).hexdigest() != meta.sha256:
        raise CorruptSnapshot(
            f"{source}: snapshot at index {meta.index} fails its checksum ({len(payload)} of {meta.bytes} bytes); "
            "it is damaged: remove the data dir to rejoin from the leader, or restore it from a backup"
        )
    return meta, payload


class SnapshotStore:
    def __init__(self, directory: Path, fsync: bool = True) -> None:
        self.dir = directory
        self.fsync = fsync
        self.rename_first = False  # bugs.RENAME_BEFORE_FSYNC (set by the node)
        self.dir.mkdir(parents=True, exist_ok=True)

    def path_for(self, index: int) -> Path:
        return self.dir / f"snap-{index:020d}.snap"

    def files(self) -> list[Path]:
        return sorted(self.dir.glob("snap-*.snap"))

    def write(self, meta: SnapshotMeta, payload: bytes) -> Path:
        path = self.path_for(meta.index)
        write_atomic(path, [meta.header(), payload], self.fsync, "snapshot", self.rename_first)
        for old in self.files()[:-KEEP]:
            old.unlink()
        return path

    def latest(self) -> tuple[SnapshotMeta, bytes] | None:
        for tmp in self.dir.glob("*.tmp"):
            log.warning("removing %s: a snapshot write interrupted before it completed", tmp.name)
            with contextlib.suppress(OSError):
                tmp.unlink()
        files = self.files()
        if not files:
            return None
        return parse(files[-1].read_bytes(), str(files[-1]))

    def latest_meta(self) -> SnapshotMeta | None:
        """The newest snapshot's header only (its payload unread and unchecked), or None."""
        files = self.files()
        if not files:
            return None
        with files[-1].open("rb") as f:
            return parse_header(f.readline(), str(files[-1]))

    def latest_blob(self) -> bytes | None:
        files = self.files()
        return files[-1].read_bytes() if files else None
