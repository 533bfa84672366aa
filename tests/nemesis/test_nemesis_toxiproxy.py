"""Squall's Toxiproxy server, driven only through the stock toxiproxy-python client.

Real processes and real TCP on 127.0.0.1: the server runs as a child
process (as it does in a run), the upstream is a small threaded echo server.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest
from toxiproxy import Toxiproxy
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from squall.nemesis import toxiproxy_process


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo() -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def toxi_server() -> Iterator[toxiproxy_process.ToxiproxyServerProcess]:
    server = toxiproxy_process.start("pytest-toxi", prefer_shopify=False, seed=1)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def toxi(toxi_server: toxiproxy_process.ToxiproxyServerProcess) -> Iterator[Toxiproxy]:
    client = Toxiproxy()
    client.update_api_consumer(toxi_server.host, toxi_server.port)
    try:
        yield client
    finally:
        client.destroy_all()


def _addr(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host, int(port)


def _rtt(listen: str, payload: bytes = b"ping") -> float:
    with socket.create_connection(_addr(listen), timeout=5) as s:
        started = time.monotonic()
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            got += s.recv(65536)
        return time.monotonic() - started


def _roundtrip(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def test_version_answers_and_created_proxy_is_listed(toxi: Toxiproxy, echo: str) -> None:
    assert toxi.running()
    assert toxi.version()
    proxy = toxi.create(upstream=echo, name="echo")
    assert proxy.listen.startswith("127.0.0.1:") and not proxy.listen.endswith(":0")
    listed = toxi.proxies()
    assert set(listed) == {"echo"} and listed["echo"].upstream == echo and listed["echo"].enabled


def test_bytes_pass_through_the_proxy_unchanged(toxi: Toxiproxy, echo: str) -> None:
    proxy = toxi.create(upstream=echo, name="echo")
    payload = bytes(range(256)) * 4000
    with socket.create_connection(_addr(proxy.listen), timeout=5) as s:
        assert _roundtrip(s, payload) == payload


def test_latency_toxic_raises_round_trip_time(toxi: Toxiproxy, echo: str) -> None:
    proxy = toxi.create(upstream=echo, name="echo")
    before = min(_rtt(proxy.listen) for _ in range(3))
    proxy.add_toxic(type="latency", attributes={"latency": 150, "jitter": 0})
    after = min(_rtt(proxy.listen) for _ in range(3))
    assert after >= 0.15 > before, f"rtt before {before:.3f}s, with 150 ms latency {after:.3f}s"
    proxy.destroy_toxic("latency_downstream")
    assert min(_rtt(proxy.listen) for _ in range(3)) < 0.15


def test_latency_applies_to_live_connections_and_both_streams(toxi: Toxiproxy, echo: str) -> None:
    proxy = toxi.create(upstream=echo, name="echo")
    with socket.create_connection(_addr(proxy.listen), timeout=5) as s:
        assert _roundtrip(s, b"warm") == b"warm"
        proxy.add_toxic(type="latency", stream="upstream", attributes={"latency": 100})
        proxy.add_toxic(type="latency", stream="downstream", attributes={"latency": 100})
        started = time.monotonic()
        assert _roundtrip(s, b"slow") == b"slow"
        assert time.monotonic() - started >= 0.2


def test_disable_cuts_live_connections_and_stops_listening(toxi: Toxiproxy, echo: str) -> None:
    proxy = toxi.create(upstream=echo, name="echo")
    live = socket.create_connection(_addr(proxy.listen), timeout=5)
    try:
        assert _roundtrip(live, b"a") == b"a"
        proxy.disable()
        assert live.recv(10) == b"", "the live connection was not closed by disable"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(_addr(proxy.listen), timeout=2)
        proxy.enable()
        assert _rtt(proxy.listen) >= 0
    finally:
        live.close()


def test_timeout_zero_holds_data_until_the_toxic_is_removed(toxi: Toxiproxy, echo: str) -> None:
    proxy = toxi.create(upstream=echo, name="echo")
    proxy.add_toxic(type="timeout", name="hole", attributes={"timeout": 0})
    with socket.create_connection(_addr(proxy.listen), timeout=0.5) as s:
        s.sendall(b"lost?")
        with pytest.raises(TimeoutError):
            s.recv(10)
        proxy.destroy_toxic("hole")
        s.settimeout(5)
        assert s.recv(10) == b"lost?"


def test_timeout_with_a_duration_closes_the_connection(toxi: Toxiproxy, echo: str) -> None:
    proxy = toxi.create(upstream=echo, name="echo")
    proxy.add_toxic(type="timeout", attributes={"timeout": 100})
    with socket.create_connection(_addr(proxy.listen), timeout=5) as s:
        s.sendall(b"x")
        assert s.recv(10) == b"", "the connection was not closed after the timeout"


def test_reset_peer_resets_the_connection(toxi: Toxiproxy, echo: str) -> None:
    proxy = toxi.create(upstream=echo, name="echo")
    proxy.add_toxic(type="reset_peer", attributes={"timeout": 50})
    with socket.create_connection(_addr(proxy.listen), timeout=5) as s:
        assert _roundtrip(s, b"x") == b"x", "data must flow until the reset fires"
        with pytest.raises(ConnectionResetError):
            if s.recv(10) == b"":
                pytest.fail("the connection was closed cleanly, not reset")


def test_limit_data_closes_after_that_many_bytes(toxi: Toxiproxy, echo: str) -> None:
    proxy = toxi.create(upstream=echo, name="echo")
    proxy.add_toxic(type="limit_data", attributes={"bytes": 10})
    with socket.create_connection(_addr(proxy.listen), timeout=5) as s:
        s.sendall(b"0123456789abcdef")
        got = b""
        while chunk := s.recv(100):
            got += chunk
        assert got == b"0123456789"


def test_slicer_and_bandwidth_deliver_every_byte_in_order(toxi: Toxiproxy, echo: str) -> None:
    proxy = toxi.create(upstream=echo, name="echo")
    proxy.add_toxic(type="slicer", attributes={"average_size": 7, "size_variation": 3, "delay": 10})
    proxy.add_toxic(type="bandwidth", stream="upstream", attributes={"rate": 1000})
    payload = bytes(range(256)) * 8
    with socket.create_connection(_addr(proxy.listen), timeout=5) as s:
        assert _roundtrip(s, payload) == payload


def test_toxicity_zero_never_applies(toxi: Toxiproxy, echo: str) -> None:
    proxy = toxi.create(upstream=echo, name="echo")
    proxy.add_toxic(type="timeout", toxicity=0.0, attributes={"timeout": 0})
    with socket.create_connection(_addr(proxy.listen), timeout=5) as s:
        assert _roundtrip(s, b"free") == b"free"


def test_reset_removes_toxics_and_enables_proxies(toxi: Toxiproxy, echo: str) -> None:
    proxy = toxi.create(upstream=echo, name="echo")
    proxy.add_toxic(type="latency", attributes={"latency": 1000})
    proxy.disable()
    assert toxi.reset()
    again = toxi.get_proxy("echo")
    assert again is not None and again.enabled and again.toxics() == {}
    assert _rtt(proxy.listen) < 1.0


def test_client_errors_map_to_the_clients_exceptions(toxi: Toxiproxy, echo: str) -> None:
    proxy = toxi.create(upstream=echo, name="echo")
    with pytest.raises(ProxyExists):
        toxi.create(upstream=echo, name="echo")
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="latencyy")
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="latency", attributes={"latency": -5})
    proxy.add_toxic(type="latency", name="l1")
    with pytest.raises(ProxyExists):
        proxy.add_toxic(type="latency", name="l1")
    with pytest.raises(NotFound):
        proxy.destroy_toxic("nope")
    assert proxy.destroy()
    with pytest.raises(NotFound):
        proxy.destroy()


def test_cleanup_finds_and_stops_a_leftover_server() -> None:
    server = toxiproxy_process.start("pytest-leftover", prefer_shopify=False)
    try:
        assert server.process.pid in toxiproxy_process.leftovers("pytest-leftover")
        assert toxiproxy_process.cleanup("pytest-leftover") == [server.process.pid]
        server.process.wait(5)
        assert toxiproxy_process.leftovers("pytest-leftover") == []
    finally:
        server.stop()


def _dead_owner() -> str:
    """The stamp of an owner that took its lock and exited: dead, whatever its pid is now."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-c", "from squall import owner; print(owner.stamp())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_cleanup_without_a_run_stops_only_servers_whose_owner_is_gone() -> None:

    # An owner that took its lock and exited: dead, whatever its pid is now.
    gone = _dead_owner()
    orphan = toxiproxy_process.start("pytest-orphan", prefer_shopify=False, owner=gone)
    mine = toxiproxy_process.start("pytest-mine", prefer_shopify=False)
    try:
        from squall.nemesis.cleanup import cleanup

        stopped = cleanup(containers=False).toxiproxy_pids
        assert orphan.process.pid in stopped
        assert mine.process.pid not in stopped
        assert mine.process.poll() is None, "a server with a live owner was stopped"
    finally:
        orphan.stop()
        mine.stop()


def test_the_leftover_sweep_stops_a_toxiproxy_server_whose_owner_died() -> None:

    from squall.run.sweep import sweep_leftovers

    gone = _dead_owner()
    orphan = toxiproxy_process.start("pytest-swept", prefer_shopify=False, owner=gone)
    try:
        removed = sweep_leftovers()
        assert f"toxiproxy server pid {orphan.process.pid}" in removed
        orphan.process.wait(10)
    finally:
        orphan.stop()
