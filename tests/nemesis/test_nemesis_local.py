"""The faults the local backend supports, on real local node processes (no docker)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from squall.cluster.base import ClusterSpec
from squall.cluster.local import LocalCluster
from squall.history import NEMESIS, Op
from squall.nemesis.base import Fault
from squall.nemesis.schedule import Event, Schedule
from tests.aurora import AURORA, node_url, status
from tests.nemesis.conftest import Running


def invoke(fault: Fault, f: str, **params: Any) -> Op:
    done = fault.invoke(Op(process=NEMESIS, type="invoke", f=f"{f}-{fault.kind}", value=params))
    assert done.type == "ok", f"{f}-{fault.kind} failed: {done.error}"
    return done


@pytest.fixture(scope="module")
def local(running: Running) -> Iterator[tuple[LocalCluster, dict[str, Fault]]]:
    spec = ClusterSpec(name=f"sqnem-{uuid.uuid4().hex[:8]}", nodes=3, options={"snapshot_every": 0})
    cluster = LocalCluster(spec, AURORA)
    faults = Schedule(
        (
            Event(0, "link", 1, {}),
            Event(0, "kill", 1, {}),
            Event(0, "pause", 1, {}),
            Event(0, "partition", 1, {}),
        )
    ).prepare(cluster)
    with running(cluster, faults) as made:
        yield made  # type: ignore[misc]


def commit_time(cluster: LocalCluster, key: str) -> float:
    leader = cluster.leader(10)
    assert leader, "no leader agreed within 10 s"
    started = time.monotonic()
    r = requests.put(f"{node_url(cluster, leader)}/kv/{key}", json={"value": 1}, timeout=10)
    assert r.status_code == 200, r.text
    return time.monotonic() - started


def test_local_peers_talk_through_the_proxies_and_latency_slows_commits(local: Any) -> None:
    cluster, faults = local
    # 100 ms each way: a commit needs one proxied round trip (>= 200 ms), and
    # heartbeats still arrive well inside the 300 ms election timeout.
    before = min(commit_time(cluster, f"a{i}") for i in range(3))
    invoke(
        faults["link"],
        "start",
        toxic="latency",
        target="all",
        attributes={"latency": 100, "jitter": 0},
    )
    slowed = min(commit_time(cluster, f"b{i}") for i in range(3))
    invoke(faults["link"], "stop")
    assert slowed >= 0.2 > before, f"commit {before:.3f}s before, {slowed:.3f}s with latency"
    cluster.wait_healthy(30)


def test_local_kill_and_pause_take_effect_and_heal(local: Any) -> None:
    cluster, faults = local
    invoke(faults["kill"], "start", nodes=["n2"])
    assert status(cluster, "n2") is None
    invoke(faults["kill"], "stop")
    invoke(faults["pause"], "start", nodes=["n3"])
    assert status(cluster, "n3", timeout=1.0) is None
    invoke(faults["pause"], "stop")
    cluster.wait_healthy(30)


def test_local_partition_isolates_the_leader_on_the_proxies(local: Any) -> None:
    cluster, faults = local
    old = cluster.leader(10)
    assert old, "no leader agreed within 10 s"
    done = invoke(faults["partition"], "start", grudge="leader")
    assert done.value["proxies"], "no proxy was cut"
    majority = [n for n in cluster.nodes if n != old]
    deadline = time.monotonic() + 30
    fresh = None
    while fresh is None and time.monotonic() < deadline:
        views = [status(cluster, n) or {} for n in majority]
        fresh = next((v["id"] for v in views if v.get("role") == "leader"), None)
        time.sleep(0.1)
    assert fresh, "the majority side elected no leader within 30 s"
    ok = requests.put(f"{node_url(cluster, fresh)}/kv/p-maj", json={"value": 1}, timeout=5)
    assert ok.status_code == 200, ok.text
    try:
        cut = requests.put(f"{node_url(cluster, old)}/kv/p-min", json={"value": 1}, timeout=3)
        assert cut.status_code != 200, "the isolated old leader committed a write"
    except requests.RequestException:
        pass  # a timeout is what a minority gives
    invoke(faults["partition"], "stop")
    cluster.wait_healthy(30)
