"""Each bug mode does the wrong thing it claims to, and the correct store does not."""

from __future__ import annotations

import pytest
import requests

from squall.systems.aurora.store import bugs
from squall.systems.aurora.store.config import ConfigError, from_dict
from tests.aurora import node_url, status
from tests.store.conftest import MakeCluster
from tests.store.helpers import Client, wait_for
from tests.store.test_recovery import snapshot_then_restart


def test_squall_bugs_adds_to_the_configured_bug_modes() -> None:
    assert bugs.resolve(["early-ack"], "stale-read, no-fsync") == {
        "early-ack",
        "stale-read",
        "no-fsync",
    }


def test_an_unknown_bug_mode_is_a_config_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="known: stale-read"):
        from_dict({"id": "n1", "data_dir": "/tmp/x", "bugs": ["stale-reads"]}, env_bugs="")


@pytest.mark.parametrize("bug, status", [("stale-read", 200), (None, 421)])
def test_stale_read_serves_reads_on_a_follower(
    make_cluster: MakeCluster, bug: str | None, status: int
) -> None:
    cluster = make_cluster(3, bugs=[bug] if bug else [])
    client = Client(cluster)
    client.put("k", 1)
    follower = next(n for n in cluster.nodes if n != client.leader())
    assert requests.get(node_url(cluster, follower) + "/kv/k", timeout=5).status_code == status


@pytest.mark.parametrize("bug, status", [("early-ack", 200), (None, 504)])
def test_early_ack_acknowledges_a_write_no_majority_has(
    make_cluster: MakeCluster, bug: str | None, status: int
) -> None:
    cluster = make_cluster(3, bugs=[bug] if bug else [], request_timeout_ms=1000)
    leader = Client(cluster).leader()
    followers = [n for n in cluster.nodes if n != leader]
    for n in followers:
        cluster.pause(n)
    try:
        r = requests.put(node_url(cluster, leader) + "/kv/k", json={"value": 1}, timeout=10)
        assert r.status_code == status, r.text
    finally:
        for n in followers:
            cluster.resume(n)


@pytest.mark.parametrize("bug, same", [("lossy-snapshot", False), (None, True)])
def test_lossy_snapshot_restores_a_different_state(
    make_cluster: MakeCluster, bug: str | None, same: bool
) -> None:
    taken, restored = snapshot_then_restart(
        make_cluster(1, snapshot_every=0, bugs=[bug] if bug else [])
    )
    assert (restored["digest"] == taken["digest"]) is same


def test_no_fsync_is_reported_in_status(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(1, bugs=["no-fsync"])
    wait_for(
        "status naming the bug", lambda: (status(cluster, "n1") or {}).get("bugs") == ["no-fsync"]
    )


def test_a_mistyped_number_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="snapshot_every must be a non-negative integer"):
        from_dict({"id": "n1", "data_dir": "/tmp/x", "snapshot_every": "1000"}, env_bugs="")
