"""Raft RPCs name their addressee: a node refuses one meant for another peer (reached at a stale address)."""

from __future__ import annotations

from typing import Any

import requests

from squall.cluster.local import LocalCluster
from tests.aurora import node_url, peer_post
from tests.store.conftest import MakeCluster
from tests.store.helpers import Client


def _status(cluster: LocalCluster, node: str) -> dict[str, Any]:
    r = requests.get(f"{node_url(cluster, node)}/status", timeout=5)
    status: dict[str, Any] = r.json()
    return status


def test_an_append_addressed_to_another_node_is_refused_and_changes_nothing(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(3)
    client = Client(cluster)
    client.put("k", 1)
    follower = next(n for n in cluster.nodes if n != client.leader())
    other = next(n for n in cluster.nodes if n != follower)
    before = _status(cluster, follower)
    append = {
        "term": int(before["term"]) + 5,
        "leader": other,
        "prev_index": 0,
        "prev_term": 0,
        "entries": [],
        "commit": 0,
    }
    r = peer_post(cluster, follower, "/raft/append", append, sender=other, to=other)
    assert r.status_code == 400 and f"addressed to {other}" in r.text, (
        f"misaddressed append answered {r.status_code}"
    )
    assert _status(cluster, follower)["term"] == before["term"], (
        "a misaddressed append moved the node's term"
    )
    ok = peer_post(cluster, follower, "/raft/append", append, sender=other)
    assert ok.status_code == 200 and ok.json()["term"] == append["term"], (
        "a rightly addressed append was refused"
    )
