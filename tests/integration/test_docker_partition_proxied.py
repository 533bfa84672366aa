"""Partitions still cut node pairs whose traffic goes through a proxy on the host.

Link faults route node-to-node traffic through Toxiproxy on the host, so a
peer's packets arrive from the host's address and an INPUT rule on the
peer's own address would miss them. Here a plain TCP forwarder stands in for
Toxiproxy (the partition code must not depend on what the proxy is).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from squall.cluster.base import ClusterSpec
from squall.cluster.docker import DockerCluster, docker_client
from squall.protocols import NodeNeeds
from tests.aurora import AURORA

pytestmark = pytest.mark.docker


class Forwarder:
    """Accepts on ``host``:<free port> and pipes each connection to ``upstream()``."""

    def __init__(self, host: str, upstream: Callable[[], tuple[str, int]]) -> None:
        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        self.upstream = upstream
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            try:
                up = socket.create_connection(self.upstream(), timeout=5)
            except OSError:
                conn.close()
                continue
            for a, b in [(conn, up), (up, conn)]:
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def proxied() -> Iterator[DockerCluster]:
    # The default bridge's gateway exists before the run's network, like Toxiproxy's listen address.
    ipam = docker_client().networks.get("bridge").attrs["IPAM"]["Config"][0]
    host = ipam.get("Gateway") or str(ipaddress.ip_network(ipam["Subnet"])[1])
    nodes = ["n1", "n2", "n3"]
    holder: dict[str, DockerCluster] = {}

    def to(dst: str) -> Callable[[], tuple[str, int]]:
        def addr() -> tuple[str, int]:
            # The peer port is never published: the host reaches it at the node's own address.
            peer = next(p for p in AURORA.ports if p.name == AURORA.peer_port)
            return holder["c"].node_ip(dst), peer.number

        return addr

    forwarders = {(s, d): Forwarder(host, to(d)) for s in nodes for d in nodes if s != d}
    name = f"test-proxied-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    spec = ClusterSpec(name=name, nodes=3)
    spec.need(NodeNeeds(peer_routes={pair: f"{host}:{f.port}" for pair, f in forwarders.items()}))
    c = DockerCluster(spec, AURORA)
    holder["c"] = c
    try:
        c.up()
        yield c
    finally:
        c.down()
        for f in forwarders.values():
            f.close()


def test_partition_cuts_a_pair_whose_traffic_goes_through_a_proxy(proxied: DockerCluster) -> None:
    try:
        cut = {p for p, ok in proxied.reachability().items() if not ok}
        assert cut == set(), "the proxied cluster starts partitioned"
        proxied.partition({"n2": {"n1"}})
        cut = {p for p, ok in proxied.reachability().items() if not ok}
        assert cut == {("n1", "n2"), ("n2", "n1")}
    finally:
        proxied.heal()
    assert all(proxied.reachability().values()), "heal() left a proxied pair cut"
