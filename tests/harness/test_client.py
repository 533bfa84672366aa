"""The client's op classification against a real HTTP server on loopback.

The rule under test: fail only when the store certainly did not apply the op;
everything uncertain (timeouts, dropped connections, the store's own timeout
code) is info.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from squall.systems.aurora.client import StoreClient


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self.server.hits.append((self.server.name, self.path))  # type: ignore[attr-defined]
        path = self.path
        if path == "/ok":
            self._reply(200, {"value": 3})
        elif path == "/slow":
            time.sleep(1.0)
            self._reply(200, {"value": 3})
        elif path == "/store-timeout":
            self._reply(504, {"error": {"code": "timeout", "message": "not committed in time"}})
        elif path == "/unavailable":
            self._reply(503, {"error": {"code": "unavailable", "message": "no leader"}})
        elif path == "/cas-mismatch":
            self._reply(409, {"error": {"code": "precondition_failed", "current": 1}})
        elif path == "/boom":
            self._reply(500, {"error": {"code": "internal", "message": "?"}})
        elif path == "/drop":
            self.connection.shutdown(socket.SHUT_RDWR)
            self.connection.close()
        elif path == "/redirect":
            leader = self.server.leader  # type: ignore[attr-defined]
            if self.server.name == leader:  # type: ignore[attr-defined]
                self._reply(200, {"value": "from-leader"})
            else:
                self._reply(421, {"error": {"code": "not_leader", "leader": leader}})


def _server(name: str, leader: str, hits: list) -> ThreadingHTTPServer:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.name, srv.leader, srv.hits = name, leader, hits  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture
def nodes() -> Iterator[tuple[dict[str, str], list]]:
    hits: list = []
    servers = {n: _server(n, "b", hits) for n in ("a", "b")}
    urls = {n: f"http://127.0.0.1:{s.server_address[1]}" for n, s in servers.items()}
    try:
        yield urls, hits
    finally:
        for s in servers.values():
            s.shutdown()
            s.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_success_is_ok(nodes):
    urls, _ = nodes
    out = StoreClient(urls).call("GET", "/ok")
    assert out.type == "ok" and out.body == {"value": 3}


def test_a_read_timeout_is_indeterminate(nodes):
    urls, _ = nodes
    out = StoreClient(urls, timeout=0.3).call("GET", "/slow")
    assert out.type == "info" and out.error == "timeout"


def test_the_stores_timeout_code_is_indeterminate(nodes):
    urls, _ = nodes
    assert StoreClient(urls).call("GET", "/store-timeout").type == "info"


def test_an_unknown_server_error_is_indeterminate(nodes):
    urls, _ = nodes
    assert StoreClient(urls).call("GET", "/boom").type == "info"


def test_a_connection_dropped_after_sending_is_indeterminate(nodes):
    urls, _ = nodes
    assert StoreClient(urls).call("GET", "/drop").type == "info"


def test_definite_refusals_are_failures(nodes):
    urls, _ = nodes
    client = StoreClient(urls)
    assert client.call("GET", "/unavailable").type == "fail"
    out = client.call("GET", "/cas-mismatch")
    assert out.type == "fail" and out.error == "precondition_failed"


def test_a_node_that_knows_no_leader_is_left_for_the_next_one(nodes):
    # A cut-off old leader answers "unavailable" to everyone; the next op must try
    # another node, or a worker never finds the majority side's new leader.
    urls, _ = nodes
    client = StoreClient(urls, first=0)
    out = client.call("GET", "/unavailable")
    assert out.type == "fail" and out.node == "a"
    assert client.preferred == "b"


def test_not_leader_is_resent_to_the_named_leader(nodes):
    urls, hits = nodes
    client = StoreClient(urls, first=0)  # starts at "a", which is not the leader
    out = client.call("GET", "/redirect")
    assert out.type == "ok" and out.node == "b" and out.body == {"value": "from-leader"}
    assert [h[0] for h in hits] == ["a", "b"]


def test_a_refused_connection_moves_on_to_another_node(nodes):
    urls, _ = nodes
    urls = {"a": f"http://127.0.0.1:{_closed_port()}", "b": urls["b"]}
    out = StoreClient(urls, first=0).call("GET", "/ok")
    assert out.type == "ok" and out.node == "b"


def test_no_node_accepting_connections_is_a_failure():
    urls = {n: f"http://127.0.0.1:{_closed_port()}" for n in ("a", "b", "c")}
    out = StoreClient(urls).call("GET", "/ok")
    assert out.type == "fail" and "no node accepted" in (out.error or "")


def test_a_read_at_home_starts_at_the_workers_own_node(nodes):
    urls, hits = nodes
    client = StoreClient(urls, first=0)  # home is "a"
    assert client.call("GET", "/redirect").node == "b"  # now prefers the leader b
    hits.clear()
    out = client.call("GET", "/redirect", at_home=True)
    assert out.type == "ok" and [h[0] for h in hits] == ["a", "b"]
