"""The term/vote file: one write at a time, even when the coroutine that asked for one is cancelled."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest

from squall.systems.aurora.store.raft import Raft
from tests.store.helpers import lone_raft


def _raft(tmp_path: Path) -> Raft:
    return lone_raft(tmp_path, "n1", 3)


def test_a_cancelled_persist_holds_the_file_until_its_write_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raft = _raft(tmp_path)
    real, release = raft._write_meta, threading.Event()
    writing, overlaps = [0], [0]
    lock = threading.Lock()

    def slow_write(value: dict) -> None:  # type: ignore[type-arg]
        with lock:
            writing[0] += 1
            overlaps[0] = max(overlaps[0], writing[0])
        if not release.is_set():
            release.wait(5)
        time.sleep(0.05)
        real(value)
        with lock:
            writing[0] -= 1

    monkeypatch.setattr(raft, "_write_meta", slow_write)

    async def go() -> None:
        raft.term, raft.voted_for = 3, "n2"
        first = asyncio.ensure_future(raft._persist())
        await asyncio.sleep(0.05)  # its write is on a thread, waiting for the disk
        first.cancel()
        await asyncio.sleep(0)
        raft.term, raft.voted_for = 4, "n3"
        second = asyncio.ensure_future(raft._persist())
        await asyncio.sleep(0.05)
        release.set()
        await second

    asyncio.run(go())
    assert overlaps[0] == 1, "two writes of the term/vote file ran at once"
    assert json.loads((tmp_path / "raft-meta.json").read_text())["term"] == 4
