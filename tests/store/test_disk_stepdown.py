"""A node whose disk write is stuck: as leader it steps down, as follower it does not campaign."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from squall.systems.aurora.store.diskwatch import DiskWatch
from squall.systems.aurora.store.raft import Raft
from tests.store.helpers import lone_raft


def _raft(tmp_path: Path) -> Raft:
    return lone_raft(tmp_path, "n1", 3, election_timeout_ms=(100, 200), heartbeat_ms=20)


def _hold_a_write(disk: DiskWatch) -> threading.Event:
    """A write that stays in flight on another thread until the returned event is set."""
    release, entered = threading.Event(), threading.Event()

    def stuck() -> None:
        with disk.write():
            entered.set()
            release.wait(10)

    threading.Thread(target=stuck, daemon=True).start()
    assert entered.wait(5)
    return release


def test_the_watch_reports_the_oldest_write_in_flight() -> None:
    disk = DiskWatch()
    assert disk.stalled_for() == 0.0
    release = _hold_a_write(disk)
    try:
        asyncio.run(asyncio.sleep(0.05))
        assert disk.stalled_for() >= 0.05
    finally:
        release.set()
    for _ in range(100):
        if disk.stalled_for() == 0.0:
            break
        asyncio.run(asyncio.sleep(0.01))
    assert disk.stalled_for() == 0.0


def _lead_with_peers_acking(r: Raft, seconds: float) -> list[str]:
    """Runs the ticker as leader while every peer keeps acknowledging; returns the roles seen."""

    async def scenario() -> list[str]:
        await r.start()
        r.term = 1
        r._become_leader()
        roles = []
        try:
            end = r._now() + seconds
            while r._now() < end:
                for p in r.peers:
                    r.ack_time[p] = r._now()  # check-quorum stays satisfied throughout
                roles.append(r.role)
                await asyncio.sleep(0.01)
        finally:
            await r.stop()
        return roles

    return asyncio.run(scenario())


def test_a_leader_with_a_stuck_write_steps_down(tmp_path: Path) -> None:
    r = _raft(tmp_path)
    release = _hold_a_write(r.disk)
    try:
        roles = _lead_with_peers_acking(r, 0.6)
    finally:
        release.set()
    assert roles[0] == "leader"
    assert roles[-1] == "follower", (
        "a leader whose disk write waited past the election timeout kept leading"
    )


def test_a_leader_with_a_healthy_disk_keeps_leading(tmp_path: Path) -> None:
    r = _raft(tmp_path)
    roles = _lead_with_peers_acking(r, 0.6)
    assert set(roles) == {"leader"}


def test_a_follower_with_a_stuck_write_does_not_campaign(tmp_path: Path) -> None:
    r = _raft(tmp_path)
    release = _hold_a_write(r.disk)

    async def scenario() -> int:
        await r.start()
        try:
            await asyncio.sleep(0.6)  # three times the longest election timeout
            return r.term
        finally:
            await r.stop()

    try:
        term = asyncio.run(scenario())
    finally:
        release.set()
    assert term == 0 and r.role == "follower", "a node that cannot write started an election"
