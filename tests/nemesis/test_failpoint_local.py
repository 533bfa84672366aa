"""The failpoint nemesis on real local node processes under a little load: it makes each kind of
step happen, sees the point fire, records it, and its stop brings the crashed nodes back."""

from __future__ import annotations

import threading
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
from tests.aurora import AURORA, node_url
from tests.nemesis.conftest import Running
from tests.store.helpers import wait_for


def invoke(fault: Fault, f: str, **params: Any) -> Op:
    return fault.invoke(Op(process=NEMESIS, type="invoke", f=f"{f}-{fault.kind}", value=params))


@pytest.fixture(scope="module")
def local(running: Running) -> Iterator[tuple[LocalCluster, Fault]]:
    spec = ClusterSpec(name=f"sqfp-{uuid.uuid4().hex[:8]}", nodes=3, options={"snapshot_every": 0})
    cluster = LocalCluster(spec, AURORA)
    faults = Schedule((Event(0, "failpoint", 1, {}),)).prepare(cluster)
    with running(cluster, faults) as (made, fs):
        stop = threading.Event()
        load = threading.Thread(target=_writes, args=(made, stop), daemon=True)
        load.start()
        try:
            yield made, fs["failpoint"]
        finally:
            stop.set()
            load.join(10)


def _writes(cluster: LocalCluster, stop: threading.Event) -> None:
    """A steady trickle of writes, to whichever node leads (what a run's load does)."""
    http, i = requests.Session(), 0
    while not stop.is_set():
        i += 1
        for node in cluster.nodes:
            try:
                r = http.put(f"{node_url(cluster, node)}/kv/k{i % 7}", json={"value": i}, timeout=2)
                if r.status_code == 200:
                    break
            except requests.RequestException:
                pass
        stop.wait(0.02)


def all_serving(cluster: LocalCluster) -> None:
    wait_for("every node serving again", lambda: all(cluster.observe(n) for n in cluster.nodes), 30)


@pytest.mark.parametrize(
    ("point", "target", "how"),
    [
        ("wal.append.after-fsync", "follower", "crashed"),
        ("apply.after", "leader", "crashed"),
        ("snapshot.renamed", "random", "crashed"),
        ("wal.compact.dir-fsynced", "follower", "crashed"),
        ("restore.after", "random", "crashed"),
        ("snapshot.install.received", "follower", "crashed"),
        ("meta.tmp-fsynced", "follower", "crashed"),
    ],
)
def test_each_kind_of_step_is_made_to_fire_and_the_crashed_node_comes_back(
    local: tuple[LocalCluster, Fault], point: str, target: str, how: str
) -> None:
    cluster, fault = local
    all_serving(cluster)
    done = invoke(fault, "start", point=point, target=target, action="crash", wait=20)
    assert done.type == "ok", done.error
    assert done.value["point"] == point
    assert list(done.value["fired"].values()) == [how], done.value
    assert done.value["targets"] == done.value["armed_on"]
    stopped = invoke(fault, "stop")
    assert stopped.value["restarted"] == done.value["targets"]
    all_serving(cluster)


def test_a_sleep_is_seen_as_a_hit_and_disarmed_by_stop(local: tuple[LocalCluster, Fault]) -> None:
    cluster, fault = local
    all_serving(cluster)
    done = invoke(fault, "start", point="apply.before", target="leader", action="sleep:1")
    assert list(done.value["fired"].values()) == ["hit"], done.value
    node = done.value["targets"][0]
    invoke(fault, "stop")
    got = AURORA.failpoint_hits(cluster.address(node), 2)
    assert got is not None and got.get("apply.before", 0) >= 1


def test_an_unknown_point_is_an_info_completion_listing_the_known_ones(
    local: tuple[LocalCluster, Fault],
) -> None:
    _, fault = local
    done = invoke(fault, "start", point="wal.nope")
    assert done.type == "info" and "wal.append.after-fsync" in (done.error or "")


def test_a_random_point_is_drawn_from_the_systems_list_and_pinned_for_replay(
    local: tuple[LocalCluster, Fault],
) -> None:
    cluster, fault = local
    all_serving(cluster)
    params = {"point": "random", "target": "leader", "action": "1*sleep:1"}
    done = invoke(fault, "start", **params)
    invoke(fault, "stop")
    assert done.value["point"] in AURORA.failpoints()
    assert not done.value["point"].startswith("snapshot.install.")  # cannot fire on a leader
    pinned = fault.pinned(params, done.value)
    assert pinned["point"] == done.value["point"] and pinned["nodes"] == done.value["armed_on"]
