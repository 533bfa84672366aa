"""Cold standby (store/standby.py): followers keep log and snapshots, a new leader rebuilds."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest

from squall.cluster.local import LocalCluster
from squall.systems.aurora.store.standby import ColdStandby, Recovering
from tests.aurora import get, status
from tests.store.conftest import MakeCluster
from tests.store.helpers import Client, wait_for


def standby(cluster: LocalCluster, node: str) -> dict[str, Any]:
    return (status(cluster, node) or {}).get("standby") or {}


def cold_cluster_after_writes(make_cluster: MakeCluster, writes: int) -> tuple[LocalCluster, str]:
    """A 3-node cold cluster with ``writes`` puts done and its followers' snapshots kept."""
    cluster = make_cluster(3, standby="cold", snapshot_every=20, digest_every=10)
    client = Client(cluster)
    for i in range(writes):
        client.put(f"k{i % 5}", i)
    return cluster, client.leader()


def test_followers_in_cold_standby_keep_the_log_but_apply_nothing(
    make_cluster: MakeCluster,
) -> None:
    cluster, leader = cold_cluster_after_writes(make_cluster, 50)
    follower = next(n for n in cluster.nodes if n != leader)
    s = wait_for(
        "a follower to hold the committed log",
        lambda: (x := status(cluster, follower)) and x["commit_index"] >= 50 and x,
    )
    assert s["standby"]["state"] == "standby"
    assert s["applied_index"] < 20  # what it restored at start, nothing since


def test_followers_keep_the_snapshots_the_leader_takes(make_cluster: MakeCluster) -> None:
    cluster, leader = cold_cluster_after_writes(make_cluster, 50)
    taken = status(cluster, leader)["last_snapshot"]["index"]
    follower = next(n for n in cluster.nodes if n != leader)
    kept = wait_for(
        "the follower to keep the leader's snapshot",
        lambda: (
            ((status(cluster, follower) or {}).get("last_snapshot") or {}).get("index") == taken
        ),
    )
    assert kept


def test_a_new_leader_restores_the_newest_snapshot_and_replays_the_tail(
    make_cluster: MakeCluster,
) -> None:
    cluster, leader = cold_cluster_after_writes(make_cluster, 50)
    expected = {f"k{k}": max(i for i in range(50) if i % 5 == k) for k in range(5)}
    cluster.kill(leader)
    client = Client(cluster)
    new = client.leader()
    assert new != leader
    done = wait_for("the new leader to recover", lambda: standby(cluster, new).get("recoveries"))
    assert done == 1
    last = standby(cluster, new)["last"]
    assert last["snapshot_index"] >= 20 and last["tail_entries"] >= 1
    assert {k: client.get(k) for k in expected} == expected


def test_the_recovered_state_matches_the_old_leader_at_the_snapshot_index(
    make_cluster: MakeCluster,
) -> None:
    cluster, leader = cold_cluster_after_writes(make_cluster, 50)
    old = get(cluster, leader, "/digest/history")
    cluster.kill(leader)
    new = Client(cluster).leader()
    wait_for("the new leader to recover", lambda: standby(cluster, new).get("recoveries"))
    mine = get(cluster, new, "/digest/history")
    restore = [h for h in mine if h["event"] == "restore"][-1]
    theirs = {h["index"]: h["digest"] for h in old if h["event"] in ("snapshot", "apply")}
    assert theirs[restore["index"]] == restore["digest"]


def test_a_leader_not_yet_rebuilt_for_its_term_refuses_as_recovering() -> None:
    # Unit: the gate alone, on a stand-in store (the timing of a live recovery is not a test).
    raft = SimpleNamespace(role="leader", term=3)
    gate = ColdStandby(SimpleNamespace(raft=raft, cfg=SimpleNamespace(id="n2")))  # type: ignore[arg-type]
    with pytest.raises(Recovering, match="n2 leads term 3 but is still restoring"):
        gate.check_serving()
    gate.state, gate._term = "serving", 3
    gate.check_serving()
    raft.term = 4  # won again: the old term's state does not count
    with pytest.raises(Recovering):
        gate.check_serving()


def test_a_follower_is_not_refused_as_recovering_but_left_to_redirect() -> None:
    raft = SimpleNamespace(role="follower", term=3)
    ColdStandby(SimpleNamespace(raft=raft, cfg=SimpleNamespace(id="n2"))).check_serving()  # type: ignore[arg-type]


def test_recovering_answers_unavailable_with_the_reason() -> None:
    from squall.systems.aurora.store.api import errors_as_json

    async def handler(request: Any) -> Any:
        raise Recovering("n2 leads term 3 but is still restoring")

    resp = asyncio.run(errors_as_json(SimpleNamespace(), handler))  # type: ignore[arg-type]
    assert resp.status == 503
    assert json.loads(resp.body)["error"] == {
        "code": "unavailable",
        "message": "n2 leads term 3 but is still restoring",
    }
