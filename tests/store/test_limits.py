"""Limits: a huge body is refused while it streams (bounded memory); idle and slow
connections are closed; a node still serves afterwards."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from squall.cluster.local import LocalCluster
from tests.store.conftest import MakeCluster
from tests.store.helpers import Client

MIB = 1 << 20


def _rss_peak_kib(pid: int) -> int:
    """The process's peak resident set (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"/proc/{pid}/status has no VmHWM")


def _connect(cluster: LocalCluster, node: str) -> socket.socket:
    host, port = cluster.address(node).rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def _closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> float | None:
    """Seconds until the peer closed ``sock`` (None if it did not), sending ``trickle``
    every 0.1 s meanwhile."""
    start = time.monotonic()
    sock.settimeout(0.1)
    while time.monotonic() - start < seconds:
        try:
            if trickle:
                sock.sendall(trickle)
            if sock.recv(65536) == b"":
                return time.monotonic() - start
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - start
    return None


def test_a_300_mib_chunked_body_is_refused_with_bounded_memory(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(1)
    leader = Client(cluster).leader()
    pid = cluster.procs[leader].pid
    before = _rss_peak_kib(pid)
    sock = _connect(cluster, leader)
    sock.sendall(
        b"PUT /kv/a HTTP/1.1\r\nHost: n\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n" % MIB + b'{"value": "' + b"x" * (MIB - 11) + b"\r\n"
    sent = [0]

    def send() -> None:
        try:
            for _ in range(300):
                sock.sendall(chunk)
                sent[0] += MIB
        except OSError:
            return  # the node hung up: what we want

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    answer = b""
    sock.settimeout(30)
    try:
        while b"\r\n\r\n" not in answer:
            got = sock.recv(4096)
            if not got:
                break
            answer += got
    except OSError:
        pass
    sender.join(timeout=60)
    sock.close()
    grown = (_rss_peak_kib(pid) - before) / 1024
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent[0] < 300 * MIB, "the node read all 300 MiB before refusing"
    assert grown < 10, f"the node's peak RSS grew by {grown:.1f} MiB"
    assert Client(cluster).put("a", 1)["ok"]


@pytest.fixture
def quick(make_cluster: MakeCluster) -> LocalCluster:
    return make_cluster(1, idle_timeout_ms=500, header_timeout_ms=500, body_timeout_ms=500)


def test_an_idle_connection_is_closed(quick: LocalCluster) -> None:
    sock = _connect(quick, "n1")
    took = _closed_within(sock, 5)
    assert took is not None, "an idle connection stayed open 5 s (idle_timeout_ms is 500)"


def test_a_request_head_sent_a_byte_at_a_time_is_cut_off(quick: LocalCluster) -> None:
    sock = _connect(quick, "n1")
    sock.sendall(b"GET /status HTTP/1.1\r\nHost: n\r\n")
    took = _closed_within(sock, 5, trickle=b"X")
    assert took is not None, "a head trickling in for 5 s kept its connection open"


def test_a_body_that_never_arrives_is_refused(quick: LocalCluster) -> None:
    sock = _connect(quick, "n1")
    sock.sendall(b"PUT /kv/a HTTP/1.1\r\nHost: n\r\nContent-Length: 100\r\n\r\n{")
    sock.settimeout(5)
    answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_a_connection_in_use_is_kept(quick: LocalCluster) -> None:
    sock = _connect(quick, "n1")
    for _ in range(8):  # 2 s of requests 0.25 s apart: never idle for 0.5 s
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: n\r\n\r\n")
        sock.settimeout(5)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(0.25)
