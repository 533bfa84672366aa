"""iptables partitions, checked by probing every node -> node pair from inside the nodes."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from squall.cluster.base import ClusterError, ClusterSpec
from squall.cluster.docker import DockerCluster
from tests.aurora import AURORA, status

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def cluster() -> Iterator[DockerCluster]:
    name = f"test-partition-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    c = DockerCluster(ClusterSpec(name=name, nodes=5), AURORA)
    try:
        c.up()
        yield c
    finally:
        c.down()


@pytest.fixture
def healed(cluster: DockerCluster) -> Iterator[DockerCluster]:
    """The cluster, healed and with every node running after the test, whatever happened."""
    try:
        yield cluster
    finally:
        for node in cluster.nodes:
            if not cluster.is_running(node):
                cluster.start(node)
        cluster.heal()


def halves(a: list[str], b: list[str]) -> dict[str, set[str]]:
    return {**{n: set(b) for n in a}, **{n: set(a) for n in b}}


def cut_pairs(matrix: dict[tuple[str, str], bool]) -> set[tuple[str, str]]:
    return {pair for pair, ok in matrix.items() if not ok}


def expected_cuts(grudge: dict[str, set[str]]) -> set[tuple[str, str]]:
    # A grudge says who a node does not HEAR from. A probe src -> dst is an
    # HTTP round trip, so it fails when either side drops the other.
    return {(a, b) for a, peers in grudge.items() for b in peers} | {
        (b, a) for a, peers in grudge.items() for b in peers
    }


def test_halves_partition_cuts_exactly_the_crossing_pairs(healed: DockerCluster) -> None:
    assert cut_pairs(healed.reachability()) == set(), "the cluster starts partitioned"
    grudge = halves(["n1", "n2"], ["n3", "n4", "n5"])
    healed.partition(grudge)
    assert cut_pairs(healed.reachability()) == expected_cuts(grudge)
    healed.heal()
    assert cut_pairs(healed.reachability()) == set(), "heal() left pairs cut"


def test_one_way_grudge_blocks_round_trips_in_both_directions(healed: DockerCluster) -> None:
    healed.partition({"n2": {"n1"}})
    assert cut_pairs(healed.reachability()) == {("n1", "n2"), ("n2", "n1")}
    rc, rules = healed.exec("n1", ["iptables", "-S", "INPUT", "-w"])
    assert rc == 0 and "DROP" not in rules, "the node with no grudge got rules"


def test_partition_is_restored_on_a_node_that_restarts(healed: DockerCluster) -> None:
    # Only the restarted node holds rules, so nothing else would hide their loss.
    grudge = {"n1": {"n2", "n3"}}
    healed.partition(grudge)
    healed.kill("n1")
    healed.start("n1")
    deadline = time.monotonic() + 30
    while status(healed, "n1") is None:
        assert time.monotonic() < deadline, "n1 never answered the host after its restart"
        time.sleep(0.1)
    assert cut_pairs(healed.reachability()) == expected_cuts(grudge)


def test_client_in_grudge_cuts_the_host_off_that_node_only(healed: DockerCluster) -> None:
    healed.partition({"n3": {"client"}})
    assert status(healed, "n3", timeout=1.0) is None, "the host still reaches n3"
    assert all(status(healed, n, timeout=2.0) for n in ["n1", "n2", "n4", "n5"])
    assert cut_pairs(healed.reachability()) == set(), "a client grudge cut node traffic"
    healed.heal()
    assert status(healed, "n3", timeout=2.0) is not None, "heal() did not restore the host"


def test_grudge_naming_an_unknown_node_is_refused(cluster: DockerCluster) -> None:
    with pytest.raises(ClusterError, match="'n9'"):
        cluster.partition({"n1": {"n9"}})
