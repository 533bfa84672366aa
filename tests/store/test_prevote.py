"""Pre-vote stickiness: a node refuses a pre-vote only while it hears from a live
leader, not merely because its own election timer just fired."""

from __future__ import annotations

import asyncio
from pathlib import Path

from squall.systems.aurora.store.raft import Raft
from tests.store.helpers import lone_raft


def _raft(tmp_path: Path) -> Raft:
    return lone_raft(tmp_path, "n3", 5)


def test_a_follower_whose_own_timer_just_fired_grants_a_pre_vote(tmp_path: Path) -> None:
    r = _raft(tmp_path)

    async def scenario() -> dict[str, object]:
        r.term, r.leader_id = 2, "n2"  # it followed n2 once; n2 has gone silent
        r._reset_timer()  # its own election timer just fired
        req = {"term": 3, "candidate": "n4", "last_index": 0, "last_term": 0, "pre": True}
        return await r.on_vote(req)

    assert asyncio.run(scenario())["granted"] is True


def test_a_follower_that_just_heard_its_leader_refuses_a_pre_vote(tmp_path: Path) -> None:
    r = _raft(tmp_path)

    async def scenario() -> dict[str, object]:
        r.term = 2
        r._accept_leader(2, "n2")  # an append from the live leader n2
        req = {"term": 3, "candidate": "n4", "last_index": 0, "last_term": 0, "pre": True}
        return await r.on_vote(req)

    assert asyncio.run(scenario())["granted"] is False
