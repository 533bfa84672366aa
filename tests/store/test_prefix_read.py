"""``GET /kv?prefix=``: the set workload's final read — every key with a prefix, in one
linearizable read on the leader."""

from __future__ import annotations

import requests

from tests.aurora import node_url
from tests.store.conftest import MakeCluster
from tests.store.helpers import Client


def test_a_prefix_read_returns_exactly_the_keys_with_that_prefix(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3)
    url = node_url(cluster, Client(cluster).leader())
    for key, value in [("s-1", 1), ("s-2", 2), ("s-10", 10), ("t-1", 99), ("s", 0), ("%s-", 5)]:
        r = requests.put(f"{url}/kv/{key}", json={"value": value}, timeout=5)
        assert r.status_code == 200, r.text
    r = requests.get(f"{url}/kv", params={"prefix": "s-"}, timeout=5)
    assert r.status_code == 200, r.text
    assert r.json()["items"] == {"s-1": 1, "s-10": 10, "s-2": 2}
    # '%' and '_' are plain characters here, not LIKE wildcards.
    assert requests.get(f"{url}/kv", params={"prefix": "%"}, timeout=5).json()["items"] == {
        "%s-": 5
    }


def test_a_prefix_read_on_a_follower_redirects_to_the_leader(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3)
    leader = Client(cluster).leader()
    follower = next(n for n in cluster.nodes if n != leader)
    r = requests.get(f"{node_url(cluster, follower)}/kv", params={"prefix": "s-"}, timeout=5)
    assert r.status_code == 421 and r.json()["error"]["leader"] == leader


def test_an_unknown_query_parameter_is_a_400(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3)
    url = node_url(cluster, Client(cluster).leader())
    r = requests.get(f"{url}/kv", params={"prefx": "s-"}, timeout=5)
    assert r.status_code == 400 and "prefix" in r.json()["error"]["message"]
