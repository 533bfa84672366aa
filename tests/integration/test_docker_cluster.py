"""The docker backend against the real store: lifecycle, failover, collection, teardown."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from squall.cluster.base import ClusterSpec
from squall.cluster.cleanup import run_objects
from squall.cluster.docker import DockerCluster
from tests.aurora import AURORA, node_url, status
from tests.store.helpers import wait_for as store_wait_for

pytestmark = pytest.mark.docker


def run_id(tag: str) -> str:
    return f"test-{tag}-{os.getpid()}-{time.monotonic_ns() % 10**9}"


@pytest.fixture(scope="module")
def cluster() -> Iterator[DockerCluster]:
    c = DockerCluster(ClusterSpec(name=run_id("cluster"), nodes=5), AURORA)
    try:
        c.up()
        yield c
    finally:
        c.down()
    assert run_objects(c.spec.name) == [], "down() left labelled objects behind"


def wait_for(what: str, check, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    return store_wait_for(what, check, timeout, every=0.1)


def put(cluster: DockerCluster, node: str, key: str, value: str) -> bool:
    try:
        r = requests.put(f"{node_url(cluster, node)}/kv/{key}", json={"value": value}, timeout=2)
    except requests.RequestException:
        return False
    return r.status_code == 200


def test_containers_publish_only_on_loopback_without_privilege(cluster: DockerCluster) -> None:
    for node in cluster.nodes:
        attrs = cluster.container(node).attrs
        bindings = [b for bs in attrs["HostConfig"]["PortBindings"].values() for b in bs]
        assert bindings and all(b["HostIp"] == "127.0.0.1" for b in bindings), bindings
        assert attrs["HostConfig"]["Privileged"] is False
        assert "NET_ADMIN" in attrs["HostConfig"]["CapAdd"]
        assert attrs["Config"]["Hostname"] == node
        assert attrs["Config"]["Labels"]["squall.node"] == node


def test_the_peer_port_is_not_published_and_nodes_have_a_memory_limit(
    cluster: DockerCluster,
) -> None:
    for node in cluster.nodes:
        attrs = cluster.container(node).attrs
        published = set(attrs["HostConfig"]["PortBindings"])
        assert published == {"8000/tcp"}, f"{node} publishes {sorted(published)}"
        assert attrs["HostConfig"]["Memory"] == 1 << 30


def test_the_cluster_secret_is_in_no_argv_label_or_log(cluster: DockerCluster) -> None:
    secret = cluster.spec.secret
    for node in cluster.nodes:
        attrs = cluster.container(node).attrs
        seen = " ".join(
            [*attrs["Config"]["Cmd"], *attrs["Config"]["Env"], *attrs["Config"]["Labels"].values()]
        )
        assert secret not in seen, f"{node}'s container shows the secret"
        assert secret not in cluster.logs(node), f"{node}'s log shows the secret"


def test_leader_kill_elects_a_new_leader_and_the_old_one_rejoins(cluster: DockerCluster) -> None:
    old = cluster.leader(timeout=30)
    assert old is not None, "no leader before the kill"
    url_before = node_url(cluster, old)
    cluster.kill(old)
    assert not cluster.is_running(old)
    new = wait_for(
        "a new leader agreed by a majority",
        lambda: (n := cluster.leader(timeout=1)) not in (None, old) and n,
    )
    assert wait_for(
        "a write acknowledged after the failover", lambda: put(cluster, new, "after-kill", "1")
    )
    cluster.start(old)
    assert node_url(cluster, old) == url_before, "a restart must keep the node's client URL"
    seen = wait_for(
        f"{old} answering /status as a follower of {new}",
        lambda: (s := status(cluster, old)) and s.get("leader") == new and s,
    )
    assert seen["role"] == "follower"
    target = status(cluster, new)["commit_index"]  # type: ignore[index]
    wait_for(
        f"{old} applying the log up to index {target}",
        lambda: (s := status(cluster, old)) and s.get("applied_index", -1) >= target,
    )


def test_pause_silences_a_node_until_resume(cluster: DockerCluster) -> None:
    node = cluster.nodes[-1]
    cluster.pause(node)
    try:
        assert status(cluster, node, timeout=0.5) is None, "a SIGSTOPped node answered"
        assert cluster.is_running(node), "a paused container must still count as running"
    finally:
        cluster.resume(node)
    wait_for(f"{node} answering again after SIGCONT", lambda: status(cluster, node) is not None)


def test_exec_returns_exit_code_and_output(cluster: DockerCluster) -> None:
    assert cluster.exec("n1", ["sh", "-c", "echo hello; exit 3"]) == (3, "hello\n")
    assert cluster.exec("n1", ["sleep", "5"], timeout=0.5)[0] == 124


def test_collect_copies_logs_and_data(cluster: DockerCluster, tmp_path: Path) -> None:
    cluster.collect(tmp_path, data=True)
    for node in cluster.nodes:
        assert (tmp_path / node / "node.log").stat().st_size > 0, f"{node} log is empty"
        files = [p for p in (tmp_path / node / "data").rglob("*") if p.is_file()]
        assert files, f"no data files collected from {node}"


def test_down_removes_everything_and_is_idempotent() -> None:
    c = DockerCluster(ClusterSpec(name=run_id("down"), nodes=3), AURORA)
    try:
        c.up()
        assert len(run_objects(c.spec.name)) == 3 + 1 + 3  # containers, network, volumes
    finally:
        c.down()
        c.down()
    assert run_objects(c.spec.name) == []


def test_what_a_fault_needs_reaches_every_container(tmp_path: Path) -> None:
    from squall.protocols import NodeNeeds

    mark = tmp_path / "mark.txt"
    mark.write_text("yes\n")
    spec = ClusterSpec(name=run_id("needs"), nodes=3)
    spec.need(
        NodeNeeds(
            capabilities=("SYS_ADMIN",),
            mounts={str(mark): "/opt/mark.txt"},
            wrapper=("sh", "-c", 'touch /tmp/wrapped && exec "$@"', "wrapper"),
        )
    )
    c = DockerCluster(spec, AURORA)
    try:
        c.up()
        for node in c.nodes:
            assert c.exec(node, ["cat", "/opt/mark.txt"]) == (0, "yes\n")
            assert c.exec(node, ["test", "-e", "/tmp/wrapped"])[0] == 0, "the wrapper did not run"
            assert "SYS_ADMIN" in c.container(node).attrs["HostConfig"]["CapAdd"]
    finally:
        c.down()


def test_a_node_that_cannot_start_fails_up_with_its_log_and_leaves_nothing() -> None:
    from squall.cluster.base import ClusterError
    from squall.protocols import NodeNeeds

    spec = ClusterSpec(name=run_id("broken"), nodes=3)
    spec.need(NodeNeeds(wrapper=("sh", "-c", "echo squall-broken-node-marker >&2; exit 3", "x")))
    c = DockerCluster(spec, AURORA, healthy_timeout=3)
    with pytest.raises(ClusterError, match="(?s)not healthy.*squall-broken-node-marker"):
        c.up()
    assert run_objects(spec.name) == [], "a failed up() must remove what it created"


def test_a_port_another_run_took_first_is_picked_again(
    cluster: DockerCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    import squall.cluster.docker as docker_backend

    taken = int(cluster.address("n1").rsplit(":", 1)[1])
    real = docker_backend.free_ports
    picks: list[list[int]] = []

    def first_pick_collides(n: int) -> list[int]:
        ports = real(n) if picks else [taken, *real(n - 1)]
        picks.append(ports)
        return ports

    monkeypatch.setattr(docker_backend, "free_ports", first_pick_collides)
    other = DockerCluster(ClusterSpec(name=run_id("ports"), nodes=1), AURORA)
    try:
        other.up()
        assert len(picks) == 2, "the collision was not met, so the retry was not tested"
        assert other.address("n1") != f"127.0.0.1:{taken}"
    finally:
        other.down()
    assert run_objects(other.spec.name) == []
