"""disk-stall and power-cut in one run, on real containers: one FUSE layer (lazyfs) serves both.

A failed fsync (disk-stall eio) stops the node saying why, the stall's stop
restarts it on the healed disk, and a power cut of every node afterwards
keeps every acknowledged write.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from squall.cluster.base import ClusterSpec
from squall.cluster.docker import DockerCluster
from squall.history import NEMESIS, Op
from squall.nemesis.base import Fault
from squall.nemesis.disk import DiskStall
from squall.nemesis.powercut import PowerCut
from squall.systems.aurora.store import fsutil
from tests.aurora import AURORA, node_url
from tests.nemesis.test_powercut_docker import put_via_leader, read_via_leader
from tests.store.helpers import wait_for

pytestmark = pytest.mark.docker
pytest.importorskip("mfusepy")


@pytest.fixture(scope="module")
def both() -> Iterator[tuple[DockerCluster, DiskStall, PowerCut]]:
    spec = ClusterSpec(
        name=f"sqboth-{uuid.uuid4().hex[:8]}", nodes=3, options={"snapshot_every": 0}
    )
    stall, cut = DiskStall(snapshot=False), PowerCut(target="all")
    cluster = DockerCluster(spec, AURORA)
    stall.configure(cluster)
    cut.configure(cluster)  # takes stallfs's place: one layer over the data dir
    try:
        cluster.up()
        for i, fault in enumerate((stall, cut)):
            fault.setup(cluster, random.Random(i))
        yield cluster, stall, cut
    finally:
        try:
            stall.teardown()
            cut.teardown()
        finally:
            cluster.down()


def invoke(fault: Fault, f: str, **params: Any) -> Op:
    done = fault.invoke(Op(process=NEMESIS, type="invoke", f=f, value=params))
    assert done.type == "ok", f"{f} failed: {done.error}"
    return done


def test_one_fuse_layer_serves_both_and_a_failed_fsync_stops_the_node_until_healed(
    both: tuple[DockerCluster, DiskStall, PowerCut],
) -> None:
    cluster, stall, cut = both
    assert sum("lazyfs.py" in " ".join(n.wrapper) for n in cluster.spec.needs) == 1
    assert not any("stallfs.py" in " ".join(n.wrapper) for n in cluster.spec.needs)
    put_via_leader(cluster, "before", "1")
    leader = cluster.leader(30)
    node = next(n for n in cluster.nodes if n != leader)
    invoke(stall, "start-disk-stall", nodes=[node], mode="eio")
    put_via_leader(cluster, "during", "2")  # the follower's fsync fails: it stops
    wait_for(f"{node} stopping on its failed fsync", lambda: not cluster.is_running(node), 30)
    said = cluster.logs(node)
    assert "stopped: fsync of" in said and "stops rather than trust it" in said, said[-1500:]
    container = cluster.container(node)
    container.reload()
    assert container.attrs["State"]["ExitCode"] == fsutil.FSYNC_EXIT
    healed = invoke(stall, "stop-disk-stall")
    assert healed.value["restarted"] == [node]
    cluster.wait_healthy(90)
    r = requests.get(f"{node_url(cluster, node)}/status", timeout=5)
    assert r.status_code == 200
    invoke(cut, "start-power-cut", target="all")
    invoke(cut, "stop-power-cut")
    cluster.wait_healthy(90)
    assert [read_via_leader(cluster, k) for k in ("before", "during")] == ["1", "2"]
