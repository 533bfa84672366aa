"""Failpoints on real node processes: armed through the signed admin API, they crash, fail or
stall the node at their step, and the node recovers from what that step left on disk."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from squall.cluster.local import LocalCluster
from squall.systems.aurora.store import failpoints, fsutil
from tests.aurora import AURORA, node_url, status
from tests.store.conftest import MakeCluster
from tests.store.helpers import Client, wait_for


def arm(client: Client, node: str, point: str, action: str, at: str = "now") -> Any:
    c = client.cluster
    got = AURORA.failpoint(c.address(node), 5, c.spec.secret, point, action, at)
    assert got.get("status") == 200, got
    return got["result"]


def follower(client: Client) -> str:
    leader = client.leader()
    return next(n for n in client.cluster.nodes if n != leader)


def exit_of(cluster: LocalCluster, node: str) -> tuple[int, str]:
    code = cluster.procs[node].wait(timeout=20)
    return code, cluster.log_path(node).read_text()


def test_an_unsigned_failpoint_call_is_refused(cluster3: LocalCluster) -> None:
    r = requests.post(
        node_url(cluster3, "n1") + "/admin/failpoints",
        json={"point": "apply.before", "action": "crash"},
        timeout=5,
    )
    assert r.status_code == 403


def test_an_unknown_failpoint_is_a_bad_request_naming_the_known_ones(client3: Client) -> None:
    c = client3.cluster
    got = AURORA.failpoint(c.address("n1"), 5, c.spec.secret, "wal.nope", "crash")
    assert got["status"] == 400 and "wal.append.after-fsync" in got["result"]["error"]["message"]


def test_a_crash_after_the_log_fsync_kills_the_follower_and_it_recovers_the_write(
    client3: Client,
) -> None:
    cluster, node = client3.cluster, follower(client3)
    arm(client3, node, "wal.append.after-fsync", "crash")
    client3.put("k", 1)  # a majority remains: the write is acknowledged
    code, text = exit_of(cluster, node)
    assert code == failpoints.CRASH_EXIT, text[-1500:]
    assert "failpoint wal.append.after-fsync fired: crash" in text
    cluster.start(node)
    wait_for(f"{node} applied the write after restart", lambda: _applied_put(cluster, node))


def _applied_put(cluster: LocalCluster, node: str) -> bool:
    s = status(cluster, node)
    return bool(s and s["applied_index"] >= 2 and s["failpoints"]["armed"] == {})


def test_sleep_is_reported_as_a_hit_in_status(client3: Client) -> None:
    node = client3.leader()
    arm(client3, node, "apply.before", "1*sleep:50")
    client3.put("k", 1)
    s = wait_for("the hit in status", lambda: status(client3.cluster, node))
    assert s["failpoints"]["hits"] == {"apply.before": 1}


def test_a_failed_log_fsync_stops_the_node_saying_why(client3: Client) -> None:
    cluster, node = client3.cluster, follower(client3)
    arm(client3, node, "wal.append.before-fsync", "error")
    client3.put("k", 1)
    code, text = exit_of(cluster, node)
    assert code == fsutil.FSYNC_EXIT, text[-1500:]
    assert "raft.log failed" in text and "stops rather than trust it" in text


def test_forgive_fsync_keeps_a_node_running_past_a_failed_fsync(
    make_cluster: MakeCluster,
) -> None:
    client = Client(make_cluster(3, bugs=["forgive-fsync"]))
    node = follower(client)
    arm(client, node, "wal.append.before-fsync", "1*error")
    client.put("k", 1)
    client.put("k", 2)
    s = wait_for(
        f"{node} applied past the failed fsync",
        lambda: (st := status(client.cluster, node)) and st["applied_index"] >= 3 and st,
    )
    assert s["failpoints"]["hits"] == {"wal.append.before-fsync": 1}


def test_a_restore_point_armed_for_the_next_start_fires_once(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(1, snapshot_every=0)
    client = Client(cluster)
    client.put("k", 7)
    arm(client, "n1", "restore.before", "crash", at="next-start")
    cluster.kill("n1")
    cluster.start("n1")
    code, text = exit_of(cluster, "n1")
    assert code == failpoints.CRASH_EXIT and "restore.before fired" in text
    cluster.start("n1")
    cluster.wait_healthy(20)
    assert client.get("k") == 7


def test_a_crash_after_the_snapshot_rename_restarts_on_the_same_state(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(1, snapshot_every=0)
    client = Client(cluster)
    for i in range(20):
        client.put(f"k{i % 3}", i)
    arm(client, "n1", "snapshot.renamed", "crash")
    with pytest.raises(requests.ConnectionError):  # the node dies mid-call
        client.call("POST", "/admin/snapshot", node="n1", timeout=3)
    code, text = exit_of(cluster, "n1")
    assert code == failpoints.CRASH_EXIT, text[-1500:]
    cluster.start("n1")
    cluster.wait_healthy(20)
    assert [client.get(f"k{i}") for i in range(3)] == [18, 19, 17]
