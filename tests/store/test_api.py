"""The client API: bad input gets a 4xx JSON error, never a crash; followers redirect."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from squall.cluster.base import ClusterSpec
from squall.cluster.local import LocalCluster
from tests.aurora import AURORA, node_url, peer_post, status
from tests.store.helpers import Client


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = LocalCluster(
        ClusterSpec(
            name="api",
            nodes=3,
            data_root=Path(tmp_path_factory.mktemp("api")),
            options={"max_value_bytes": 1024},
        ),
        AURORA,
    )
    try:
        c.up()
        yield c
    finally:
        c.down()


@pytest.fixture
def leader_url(cluster: LocalCluster) -> str:
    return node_url(cluster, Client(cluster).leader())


def error_of(r: requests.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


def test_malformed_json_is_a_400(leader_url: str) -> None:
    r = requests.put(leader_url + "/kv/a", data=b"{not json", timeout=5)
    assert error_of(r) == (400, "bad_request")


def test_a_body_that_is_not_an_object_is_a_400(leader_url: str) -> None:
    assert error_of(requests.put(leader_url + "/kv/a", json=[1, 2], timeout=5)) == (
        400,
        "bad_request",
    )


def test_unknown_keys_are_a_400_naming_them(leader_url: str) -> None:
    r = requests.put(leader_url + "/kv/a", json={"value": 1, "vlaue": 2}, timeout=5)
    assert error_of(r) == (400, "bad_request")
    assert "vlaue" in r.json()["error"]["message"]


def test_a_missing_value_is_a_400(leader_url: str) -> None:
    assert error_of(requests.put(leader_url + "/kv/a", json={}, timeout=5)) == (400, "bad_request")


def test_an_oversized_value_is_a_413(leader_url: str) -> None:
    r = requests.put(leader_url + "/kv/a", json={"value": "x" * 2000}, timeout=5)
    assert error_of(r) == (413, "too_large")


def test_an_oversized_body_is_a_413_before_it_is_parsed(leader_url: str) -> None:
    r = requests.put(leader_url + "/kv/a", data=b"[" * 100_000, timeout=5)
    assert error_of(r) == (413, "too_large")


def test_a_bad_request_id_is_a_400(leader_url: str) -> None:
    assert error_of(
        requests.put(leader_url + "/kv/a", json={"value": 1, "request_id": 7}, timeout=5)
    ) == (400, "bad_request")


def test_an_unknown_path_is_a_404_json(leader_url: str) -> None:
    assert error_of(requests.get(leader_url + "/nope", timeout=5)) == (404, "not_found")


def test_a_wrong_method_is_a_405_json(leader_url: str) -> None:
    assert (
        requests.delete(leader_url + "/kv/a", timeout=5).json()["error"]["code"]
        == "method_not_allowed"
    )


def test_a_malformed_raft_rpc_is_a_400(cluster: LocalCluster) -> None:
    leader = Client(cluster).leader()
    sender = next(n for n in cluster.nodes if n != leader)
    r = peer_post(cluster, leader, "/raft/append", {"term": 1, "leader": sender}, sender=sender)
    assert error_of(r) == (400, "bad_request")


def test_raft_rpcs_are_not_served_on_the_client_port(leader_url: str) -> None:
    assert error_of(requests.post(leader_url + "/raft/append", json={"term": 1}, timeout=5)) == (
        404,
        "not_found",
    )


def test_the_node_still_serves_after_bad_input(leader_url: str) -> None:
    assert (
        requests.put(leader_url + "/kv/a", json={"value": {"nested": [1]}}, timeout=5).status_code
        == 200
    )
    assert requests.get(leader_url + "/kv/a", timeout=5).json()["value"] == {"nested": [1]}


def test_a_follower_answers_not_leader_naming_the_leader(cluster: LocalCluster) -> None:
    leader = Client(cluster).leader()
    follower = next(n for n in cluster.nodes if n != leader)
    for method, path, body in [("GET", "/kv/a", None), ("PUT", "/kv/a", {"value": 1})]:
        r = requests.request(method, node_url(cluster, follower) + path, json=body, timeout=5)
        assert error_of(r) == (421, "not_leader")
        assert r.json()["error"]["leader"] == leader


def test_an_absent_key_reads_as_null(leader_url: str) -> None:
    r = requests.get(leader_url + "/kv/never-written", timeout=5).json()
    assert r["value"] is None and r["index"] >= 1


def test_status_has_the_contract_fields(cluster: LocalCluster) -> None:
    s = status(cluster, "n1")
    assert s is not None
    assert {
        "id",
        "role",
        "term",
        "leader",
        "commit_index",
        "applied_index",
        "last_snapshot",
        "snapshot_in_progress",
        "snapshot_codec",
        "bugs",
    } <= set(s)
