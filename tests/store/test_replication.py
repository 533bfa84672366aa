"""Replication: committed writes survive failures and every replica ends with the same state."""

from __future__ import annotations

import re

from tests.aurora import status
from tests.store.conftest import MakeCluster
from tests.store.helpers import Client, converged, wait_for


def test_committed_writes_survive_killing_a_minority_including_the_leader(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(5)
    client = Client(cluster)
    for i in range(20):
        client.put(f"k{i}", i)
    leader = client.leader()
    follower = next(n for n in cluster.nodes if n != leader)
    cluster.kill(leader)
    cluster.kill(follower)
    assert [client.get(f"k{i}") for i in range(20)] == list(range(20))


def test_a_restarted_node_reaches_the_same_digest_from_snapshot_and_log(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(3, snapshot_every=25)
    client = Client(cluster)
    victim = next(n for n in cluster.nodes if n != client.leader())
    for i in range(60):
        client.put(f"k{i % 7}", i)
    cluster.kill(victim)
    for i in range(10):
        client.put(f"k{i % 7}", -i)
    cluster.start(victim)
    wait_for(
        "the restarted node restoring a snapshot",
        lambda: re.search(r"restored snapshot \d+", cluster.log_path(victim).read_text()),
    )
    wait_for("all three digests to agree", lambda: converged(cluster))


def test_a_far_behind_follower_is_caught_up_by_install_snapshot(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3, snapshot_every=20)
    client = Client(cluster)
    victim = next(n for n in cluster.nodes if n != client.leader())
    cluster.kill(victim)
    for i in range(70):  # the leader compacts its log past everything the victim has
        client.put(f"k{i % 5}", i)
    first = (status(cluster, client.leader()) or {})["log"]["first_index"]
    assert first > 1, "the leader never compacted its log"
    cluster.start(victim)
    wait_for("the victim to catch up", lambda: converged(cluster))
    assert "installed the leader's snapshot" in cluster.log_path(victim).read_text()


def test_a_duplicate_request_id_is_applied_once(client3: Client) -> None:
    client3.put("k", 1, request_id="r1")
    client3.put("k", 2)
    again = client3.put("k", 1, request_id="r1")  # a client retry of r1
    assert again["ok"] is True
    assert client3.get("k") == 2


def test_a_retried_cas_returns_its_first_result(client3: Client) -> None:
    client3.put("k", 0)
    first = client3.call("POST", "/kv/k/cas", {"from": 0, "to": 1, "request_id": "c1"})
    retry = client3.call("POST", "/kv/k/cas", {"from": 0, "to": 1, "request_id": "c1"})
    assert (first.status_code, retry.status_code) == (200, 200)
    assert client3.get("k") == 1


def test_a_failed_cas_reports_the_current_value(client3: Client) -> None:
    client3.put("k", 5)
    r = client3.call("POST", "/kv/k/cas", {"from": 4, "to": 6})
    assert r.status_code == 409
    assert r.json()["error"] == {
        "code": "precondition_failed",
        "message": "precondition_failed",
        "current": 5,
    }
