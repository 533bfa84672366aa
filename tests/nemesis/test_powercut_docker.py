"""The power-cut fault on real containers: unsynced writes are gone, synced ones stay.

Two 3-node clusters mounted through lazyfs: one runs the correct store, one
the ``no-fsync`` bug. A plain file probe shows the mechanism; a key written
through the leader shows what it means for the store.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import tenacity

from squall.cluster.base import ClusterSpec
from squall.cluster.docker import DockerCluster
from squall.history import NEMESIS, Op
from squall.nemesis.powercut import PowerCut
from tests.aurora import AURORA, node_url

pytestmark = pytest.mark.docker
pytest.importorskip("mfusepy")

PROBE = """
import os, sys
d = '/var/lib/squall'
def put(name, data, sync):
    with open(f'{d}/{name}', 'wb') as f:
        f.write(data)
        if sync:
            f.flush(); os.fsync(f.fileno())
put('probe-synced', b'synced bytes', True)
put('probe-unsynced', b'unsynced bytes', False)
fd = os.open(d, os.O_RDONLY); os.fsync(fd); os.close(fd)  # both names durable, one's data not
print(sorted(os.listdir(d)))
"""


def powered(bugs: list[str]) -> Iterator[tuple[DockerCluster, PowerCut]]:
    spec = ClusterSpec(
        name=f"sqpcut-{uuid.uuid4().hex[:8]}", nodes=3, bugs=bugs, options={"snapshot_every": 0}
    )
    fault = PowerCut(target="all")
    cluster = DockerCluster(spec, AURORA)
    fault.configure(cluster)
    try:
        cluster.up()
        fault.setup(cluster, random.Random(0))
        yield cluster, fault
    finally:
        try:
            fault.teardown()
        finally:
            cluster.down()


@pytest.fixture(scope="module")
def correct() -> Iterator[tuple[DockerCluster, PowerCut]]:
    yield from powered([])


@pytest.fixture(scope="module")
def no_fsync() -> Iterator[tuple[DockerCluster, PowerCut]]:
    yield from powered(["no-fsync"])


def invoke(fault: PowerCut, f: str, **params: Any) -> Op:
    done = fault.invoke(Op(process=NEMESIS, type="invoke", f=f, value=params))
    assert done.type == "ok", f"{f} failed: {done.error}"
    return done


def power_cycle(cluster: DockerCluster, fault: PowerCut, **params: Any) -> Op:
    cut = invoke(fault, "start-power-cut", **params)
    assert not any(cluster.is_running(n) for n in cut.value["targets"]), "a cut node still runs"
    invoke(fault, "stop-power-cut")
    cluster.wait_healthy(90)
    return cut


def put_via_leader(cluster: DockerCluster, key: str, value: str) -> None:
    leader = cluster.leader(30)
    assert leader, "no leader before the write"
    r = requests.put(f"{node_url(cluster, leader)}/kv/{key}", json={"value": value}, timeout=10)
    assert r.status_code == 200, f"the write was not acknowledged: {r.status_code} {r.text}"


def read_via_leader(cluster: DockerCluster, key: str) -> Any:
    """The key's value as the leader serves it, once some leader answers (bounded)."""
    try:
        for attempt in tenacity.Retrying(
            stop=tenacity.stop_after_delay(60),
            wait=tenacity.wait_fixed(0.2),
            retry=tenacity.retry_if_exception_type(OSError),
        ):
            with attempt:
                leader = cluster.leader(5)
                if leader is None:
                    raise OSError("no leader")
                r = requests.get(f"{node_url(cluster, leader)}/kv/{key}", timeout=5)
                if r.status_code != 200:
                    raise OSError(f"{leader} answered {r.status_code}: {r.text[:200]}")
                return r.json()["value"]
    except tenacity.RetryError as exc:
        pytest.fail(f"no leader served a read of {key} within 60s: {exc.last_attempt.exception()}")
    raise AssertionError("unreachable")


def test_after_a_power_cut_the_fsynced_file_stays_and_the_unsynced_bytes_are_gone(
    correct: tuple[DockerCluster, PowerCut],
) -> None:
    cluster, fault = correct
    rc, out = cluster.exec("n1", ["python3", "-c", PROBE])
    assert rc == 0, out
    cut = power_cycle(cluster, fault, nodes=["n1"])
    assert "probe-unsynced" in cut.value["dropped"]["n1"]["files_truncated"], cut.value
    rc, out = cluster.exec(
        "n1",
        [
            "sh",
            "-c",
            "cat /var/lib/squall/probe-synced; echo '|';wc -c < /var/lib/squall/probe-unsynced",
        ],
    )
    assert rc == 0, out
    synced, unsynced_size = out.split("|")
    assert synced == "synced bytes"
    assert unsynced_size.strip() == "0", "the unsynced file kept its bytes through the cut"


def test_an_acknowledged_write_survives_a_power_cut_of_every_node(
    correct: tuple[DockerCluster, PowerCut],
) -> None:
    cluster, fault = correct
    put_via_leader(cluster, "durable", "kept")
    cut = power_cycle(cluster, fault, target="all")
    assert cut.value["targets"] == sorted(cluster.nodes)
    assert read_via_leader(cluster, "durable") == "kept"


def test_without_fsync_an_acknowledged_write_is_lost_in_a_power_cut(
    no_fsync: tuple[DockerCluster, PowerCut],
) -> None:
    cluster, fault = no_fsync
    put_via_leader(cluster, "doomed", "acknowledged")
    cut = power_cycle(cluster, fault, target="all")
    assert cut.value["bytes_dropped"] > 0, cut.value
    assert read_via_leader(cluster, "doomed") is None
