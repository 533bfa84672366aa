"""The etcd client's one rule, against a stand-in gateway on loopback: ``fail`` only
when etcd certainly did not apply the request, ``info`` otherwise, and nothing sent twice."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from squall.systems.etcd.client import EtcdClient, range_end


class Gateway:
    """Answers each POST with the next scripted (status, body, delay); counts requests."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, Any], float]] = []
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.ports: set[int] = set()  # the client's source ports: one per connection
        self.headers: list[dict[str, str]] = []
        gw = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                gw.seen.append((self.path, body))
                gw.ports.add(self.client_address[1])
                gw.headers.append(dict(self.headers))
                status, answer, delay = gw.script.pop(0) if gw.script else (200, {}, 0.0)
                time.sleep(delay)
                raw = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def gw() -> Iterator[Gateway]:
    g = Gateway()
    yield g
    g.server.shutdown()
    g.server.server_close()


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def client(addresses: dict[str, str], **kw: Any) -> EtcdClient:
    return EtcdClient(lambda: addresses, worker=0, timeout=0.3, **kw)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_a_read_decodes_the_base64_json_value(gw):
    gw.script.append((200, {"kvs": [{"key": b64("r1"), "value": b64("3")}]}, 0.0))
    r = client({"n1": gw.address}).read("r1")
    assert (r.type, r.value) == ("ok", 3)


def test_a_read_of_a_missing_key_is_none(gw):
    gw.script.append((200, {"header": {}}, 0.0))
    assert client({"n1": gw.address}).read("r1").value is None


def test_a_write_that_times_out_is_info_and_is_not_sent_again(gw):
    gw.script.append((200, {}, 1.0))
    r = client({"n1": gw.address}).write("r1", 2)
    assert r.type == "info"
    assert len(gw.seen) == 1


def test_a_read_that_times_out_is_fail_since_a_read_changes_nothing(gw):
    gw.script.append((200, {}, 1.0))
    assert client({"n1": gw.address}).read("r1").type == "fail"


def test_a_refused_connection_is_fail_and_goes_to_the_next_member(gw):
    c = client({"n1": _closed_port(), "n2": gw.address})
    assert c.write("r1", 1).type == "ok"
    assert [p for p, _ in gw.seen] == ["/v3/kv/put"]


def test_no_member_accepting_the_connection_is_fail():
    assert client({"n1": _closed_port(), "n2": _closed_port()}).write("r1", 1).type == "fail"


def test_an_etcd_timeout_after_proposing_is_info(gw):
    gw.script.append((503, {"error": "etcdserver: request timed out", "code": 14}, 0.0))
    assert client({"n1": gw.address}).write("r1", 1).type == "info"


def test_too_many_requests_is_fail_since_etcd_refuses_it_before_proposing(gw):
    gw.script.append((429, {"error": "etcdserver: too many requests", "code": 8}, 0.0))
    assert client({"n1": gw.address}).write("r1", 1).type == "fail"


def test_no_leader_is_fail_since_etcd_refuses_before_the_handler(gw):
    gw.script.append((503, {"error": "etcdserver: no leader", "code": 14}, 0.0))
    assert client({"n1": gw.address}).write("r1", 1).type == "fail"


def test_writes_ask_the_member_to_refuse_without_a_leader_and_reads_do_not(gw):
    c = client({"n1": gw.address})
    c.write("r1", 1)
    c.read("r1")
    assert [h.get("Grpc-Metadata-hasleader") for h in gw.headers] == ["true", None]


def test_a_cas_whose_compare_failed_is_fail_precondition(gw):
    gw.script.append((200, {"succeeded": False}, 0.0))
    r = client({"n1": gw.address}).cas("r1", 1, 2)
    assert (r.type, r.error) == ("fail", "precondition_failed")


def test_a_cas_compares_the_old_value_and_puts_the_new(gw):
    gw.script.append((200, {"succeeded": True}, 0.0))
    client({"n1": gw.address}).cas("r1", 1, 2)
    path, body = gw.seen[0]
    assert (path, body["compare"][0]["value"], body["success"][0]["requestPut"]["value"]) == (
        "/v3/kv/txn",
        b64("1"),
        b64("2"),
    )


def test_the_set_is_read_as_one_prefix_range(gw):
    gw.script.append((200, {"kvs": [{"value": b64("5")}, {"value": b64("2")}]}, 0.0))
    r = client({"n1": gw.address}).read_all()
    assert (r.value, gw.seen[0][1]["range_end"]) == ([2, 5], b64(range_end("s/")))


def test_reads_are_linearizable_unless_the_member_has_stale_read(gw):
    client({"n1": gw.address}).read("r1")
    client({"n1": gw.address}, serializable=frozenset({"n1"})).read("r1")
    assert ["serializable" in body for _, body in gw.seen] == [False, True]


def test_one_kept_alive_connection_serves_many_ops(gw):
    c = client({"n1": gw.address})
    for i in range(5):
        c.write("r1", i)
    assert len(gw.ports) == 1
