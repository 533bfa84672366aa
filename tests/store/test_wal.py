"""The log file: what was synced is reopened, conflicts are cut, compaction keeps late appends."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from squall.systems.aurora.store.wal import CorruptLog, Entry, Wal


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def reopen(path: Path) -> Wal:
    w = Wal(path)
    w.open()
    return w


async def written(path: Path, terms: list[int]) -> Wal:
    w = reopen(path)
    for t in terms:
        w.append(t, {"op": "noop", "n": t})
    await w.sync()
    return w


def test_synced_entries_are_there_after_reopening(tmp_path: Path) -> None:
    async def go() -> None:
        w = await written(tmp_path / "raft.log", [1, 1, 2])
        w.close()

    run(go())
    w = reopen(tmp_path / "raft.log")
    assert [(e.index, e.term) for e in w.entries] == [(1, 1), (2, 1), (3, 2)]


def test_a_conflicting_suffix_is_replaced_on_disk(tmp_path: Path) -> None:
    async def go() -> None:
        w = await written(tmp_path / "raft.log", [1, 1, 1, 1])
        await w.extend(
            [Entry(3, 2, {"op": "noop"}), Entry(4, 2, {"op": "noop"}), Entry(5, 2, {"op": "noop"})]
        )
        await w.sync()
        w.close()

    run(go())
    assert [e.term for e in reopen(tmp_path / "raft.log").entries] == [1, 1, 2, 2, 2]


def test_compaction_keeps_the_tail_and_entries_appended_meanwhile(tmp_path: Path) -> None:
    async def go() -> None:
        w = await written(tmp_path / "raft.log", [1] * 10)
        task = asyncio.ensure_future(w.compact(6, 1))
        await asyncio.sleep(0)  # the rewrite is under way on the I/O thread
        w.append(1, {"op": "late"})
        await task
        await w.sync()
        w.close()

    run(go())
    w = reopen(tmp_path / "raft.log")
    assert (w.base_index, [e.index for e in w.entries]) == (6, [7, 8, 9, 10, 11])
    assert w.entries[-1].command == {"op": "late"}


def test_a_damaged_record_before_the_end_is_corruption(tmp_path: Path) -> None:
    async def go() -> None:
        (await written(tmp_path / "raft.log", [1, 1, 1])).close()

    run(go())
    data = bytearray((tmp_path / "raft.log").read_bytes())
    data[40] ^= 0x01
    (tmp_path / "raft.log").write_bytes(bytes(data))
    with pytest.raises(CorruptLog, match="checksum mismatch"):
        reopen(tmp_path / "raft.log")


def test_a_torn_last_record_is_cut_off(tmp_path: Path) -> None:
    async def go() -> None:
        (await written(tmp_path / "raft.log", [1, 1])).close()

    run(go())
    size = (tmp_path / "raft.log").stat().st_size
    with open(tmp_path / "raft.log", "ab") as f:
        f.write(b"\x00\x00\x00\x40\x00")
    w = reopen(tmp_path / "raft.log")
    assert w.last_index == 2 and (tmp_path / "raft.log").stat().st_size == size


def _busy_io(w: Wal) -> threading.Event:
    """Occupies the log's I/O thread until the returned event is set (a slow disk)."""
    release = threading.Event()
    w._io.submit(release.wait, 10)
    return release


def test_a_sync_cancelled_while_its_write_waits_for_the_disk_still_writes(
    tmp_path: Path,
) -> None:
    # aiohttp cancels a handler whose client hung up; under load that is a write
    # still queued behind a slow fsync. The bytes must land anyway: their offsets
    # are already counted, and a later sync writes the entries after them.
    async def go() -> None:
        w = await written(tmp_path / "raft.log", [1, 1])
        release = _busy_io(w)
        w.append(2, {"op": "noop", "n": "queued"})
        task = asyncio.ensure_future(w.sync())
        await asyncio.sleep(0.05)  # its write is queued behind the busy disk
        task.cancel()
        await asyncio.sleep(0)
        release.set()
        w.append(2, {"op": "noop", "n": "after"})
        await w.sync()
        w.close()

    run(go())
    w = reopen(tmp_path / "raft.log")
    assert [e.index for e in w.entries] == [1, 2, 3, 4]


def test_a_compaction_cancelled_while_it_rewrites_keeps_its_bookkeeping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The file is rewritten with a new base; offsets must follow it, or a later
    # conflicting append truncates the new file at a byte of the old one.
    async def go() -> None:
        w = await written(tmp_path / "raft.log", [1] * 6)
        release, real = threading.Event(), w._rewrite

        def slow_rewrite(records: list[bytes]) -> None:
            release.wait(10)
            real(records)

        monkeypatch.setattr(w, "_rewrite", slow_rewrite)
        task = asyncio.ensure_future(w.compact(4, 1))
        await asyncio.sleep(0.05)  # the rewrite is running on the I/O thread
        task.cancel()
        await asyncio.sleep(0)
        release.set()
        await asyncio.sleep(0.2)
        await w.extend([Entry(6, 2, {"op": "noop", "n": "conflict"})])
        await w.sync()
        w.close()

    run(go())
    w = reopen(tmp_path / "raft.log")
    assert (w.base_index, [(e.index, e.term) for e in w.entries]) == (4, [(5, 1), (6, 2)])
