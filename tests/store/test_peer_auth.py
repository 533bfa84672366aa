"""Peers authenticate: a forged append, a forged snapshot, an RPC from a non-peer are refused
and change nothing; replicated entries obey the client API's limits; admin calls need the secret."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from squall.cluster.base import ClusterSpec
from squall.cluster.local import LocalCluster
from squall.systems.aurora.store import peerauth
from squall.systems.aurora.store.snapshots import make_meta
from tests.aurora import AURORA, node_url, peer_post, status
from tests.store.helpers import Client, converged, wait_for

BIG_KEY = "k" * 3005  # past the client API's 1,024-byte limit


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = LocalCluster(
        ClusterSpec(name="auth", nodes=3, data_root=Path(tmp_path_factory.mktemp("auth"))),
        AURORA,
    )
    try:
        c.up()
        Client(c).put("a", 1)
        yield c
    finally:
        c.down()


def _follower(cluster: LocalCluster) -> tuple[str, str]:
    leader = Client(cluster).leader()
    return leader, next(n for n in cluster.nodes if n != leader)


def _append(term: int, leader: str, last: int, key: str = "x") -> dict[str, Any]:
    return {
        "term": term,
        "leader": leader,
        "prev_index": last,
        "prev_term": term,
        "entries": [{"i": last + 1, "t": term, "c": {"op": "kv.put", "key": key, "value": 1}}],
        "commit": last + 1,
    }


def _post(
    cluster: LocalCluster,
    node: str,
    route: str,
    body: bytes,
    query: dict[str, str],
    headers: dict[str, str] | None = None,
) -> requests.Response:
    """A raw POST to a node's peer port (unsigned unless ``headers`` sign it)."""
    url = f"http://{cluster.address(node, 'peer')}{route}"
    return requests.post(url, params=query, data=body, headers=headers or {}, timeout=5)


def _unchanged(cluster: LocalCluster, node: str, before: dict[str, Any]) -> bool:
    now = status(cluster, node) or {}
    return (now.get("term"), now.get("log")) == (before["term"], before["log"])


def test_an_unsigned_append_with_a_higher_term_is_refused_and_changes_nothing(
    cluster: LocalCluster,
) -> None:
    _, follower = _follower(cluster)
    before = status(cluster, follower) or {}
    forged = _append(before["term"] + 5, "evil", before["log"]["last_index"], BIG_KEY)
    r = _post(cluster, follower, "/raft/append", json.dumps(forged).encode(), {"to": follower})
    assert r.status_code == 403, r.text
    assert _unchanged(cluster, follower, before), "a forged append moved the follower's term or log"


def test_an_append_signed_with_another_secret_is_refused(cluster: LocalCluster) -> None:
    leader, follower = _follower(cluster)
    before = status(cluster, follower) or {}
    forged = _append(before["term"] + 5, leader, before["log"]["last_index"])
    r = peer_post(cluster, follower, "/raft/append", forged, leader, secret="x" * 32)
    assert r.status_code == 403, r.text
    assert _unchanged(cluster, follower, before)


def test_an_rpc_from_a_name_that_is_no_peer_is_refused_though_signed(
    cluster: LocalCluster,
) -> None:
    _, follower = _follower(cluster)
    before = status(cluster, follower) or {}
    forged = _append(before["term"] + 5, "evil", before["log"]["last_index"])
    r = peer_post(cluster, follower, "/raft/append", forged, sender="evil")
    assert (r.status_code, "not one of" in r.text) == (403, True), r.text
    assert _unchanged(cluster, follower, before)


def test_a_peer_may_not_speak_as_another_peer(cluster: LocalCluster) -> None:
    leader, follower = _follower(cluster)
    third = next(n for n in cluster.nodes if n not in (leader, follower))
    before = status(cluster, follower) or {}
    forged = _append(before["term"] + 5, leader, before["log"]["last_index"])
    r = peer_post(cluster, follower, "/raft/append", forged, sender=third)
    assert r.status_code == 403, r.text
    assert _unchanged(cluster, follower, before)


def test_an_rpc_signed_for_another_node_is_refused(cluster: LocalCluster) -> None:
    leader, follower = _follower(cluster)
    third = next(n for n in cluster.nodes if n not in (leader, follower))
    before = status(cluster, follower) or {}
    forged = _append(before["term"] + 5, leader, before["log"]["last_index"])
    # Signed for the third node, then sent to the follower without naming an addressee.
    body = json.dumps(forged).encode()
    signed = peerauth.headers(cluster.spec.secret.encode(), leader, third, "/raft/append", {}, body)
    r = _post(cluster, follower, "/raft/append", body, {}, signed)
    assert r.status_code == 403, r.text
    assert _unchanged(cluster, follower, before)


def test_a_replicated_entry_past_the_key_limit_is_refused_even_from_the_leader(
    cluster: LocalCluster,
) -> None:
    leader, follower = _follower(cluster)
    before = status(cluster, follower) or {}
    big = _append(before["term"] + 5, leader, before["log"]["last_index"], BIG_KEY)
    r = peer_post(cluster, follower, "/raft/append", big, sender=leader)
    assert (r.status_code, "key must be" in r.text) == (400, True), r.text
    assert _unchanged(cluster, follower, before)


def test_raft_rpcs_are_served_on_the_peer_port_only(cluster: LocalCluster) -> None:
    _, follower = _follower(cluster)
    r = requests.get(f"http://{cluster.address(follower, 'peer')}/kv/a", timeout=5)
    assert r.status_code == 404


def test_an_unsigned_admin_snapshot_is_refused(cluster: LocalCluster) -> None:
    leader, _ = _follower(cluster)
    r = requests.post(f"{node_url(cluster, leader)}/admin/snapshot", timeout=5)
    assert r.status_code == 403, r.text


def test_a_signed_admin_snapshot_is_taken(cluster: LocalCluster) -> None:
    leader, _ = _follower(cluster)
    answer = AURORA.snapshot(cluster.address(leader), 10, cluster.spec.secret)
    assert answer["status"] == 200, answer


def _snapshot_blob(index: int, term: int, payload: bytes) -> bytes:
    meta = make_meta(index, term, "dump", payload)  # a checksum the sender computed itself
    return meta.header() + payload


def test_an_unsigned_snapshot_is_refused(cluster: LocalCluster) -> None:
    leader, follower = _follower(cluster)
    before = status(cluster, follower) or {}
    blob = _snapshot_blob(before["applied_index"] + 100, before["term"], b"x" * 4096)
    query = {"term": str(before["term"]), "leader": leader, "to": follower}
    r = _post(cluster, follower, "/raft/snapshot", blob, query)
    assert r.status_code == 403, r.text
    assert _unchanged(cluster, follower, before)


def test_a_snapshot_that_is_no_database_is_refused_and_the_node_keeps_its_state(
    make_cluster: Any,
) -> None:
    cluster = make_cluster(3)
    client = Client(cluster)
    client.put("kept", 42)
    leader = client.leader()
    follower = next(n for n in cluster.nodes if n != leader)
    before = wait_for("the follower applied the write", lambda: status(cluster, follower))
    blob = _snapshot_blob(before["applied_index"] + 100, before["term"], b"not sqlite" * 500)
    r = peer_post(
        cluster,
        follower,
        "/raft/snapshot",
        blob,
        sender=leader,
        query={"term": str(before["term"]), "leader": leader},
    )
    assert (r.status_code, "snapshot refused" in r.text) == (400, True), r.text
    assert cluster.is_running(follower), "the node exited after a bad snapshot"
    cluster.kill(follower)
    cluster.start(follower)
    cluster.wait_healthy(20)
    assert wait_for("the cluster converged", lambda: converged(cluster)), "replicas diverged"
    assert client.get("kept") == 42
