"""etcd's v3 JSON gateway as the register and set op protocols, sending every request once.

Why a bare ``http.client`` connection per worker and not a library: etcd's
Python clients speak gRPC and retry inside the call (the Go client's retry
interceptor once produced anomalies that were the client's, not etcd's), and
``requests``/urllib3 may resend on a dropped keep-alive socket. A kept-alive
HTTP/1.1 socket that is opened explicitly, written once and closed on any
error keeps the one rule checkable:

* the connection was refused (or never opened in time): nothing was sent, so
  the op is ``fail`` and may go to the next member — that is not a retry;
* a read that did not answer: ``fail`` too — a read changes nothing, so not
  knowing its result never hides a write;
* a write or cas whose answer is an error etcd gives before proposing
  (400 bad request, ``no leader`` — writes ask for a leader, see
  ``WRITE_HEADERS`` —, ``too many requests``, ``request is too large``), or a txn
  that answered ``succeeded: false``: ``fail``;
* anything else after the request left (a timeout, a dropped connection,
  ``request timed out``, ``leader changed``, a 5xx): ``info``.

Keys and values travel base64-encoded, as the gateway wants ``bytes`` fields.
Each worker is bound to one member (``worker % n``), as Jepsen binds clients,
so a member that wrongly answers reads locally is read by some worker.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
from collections.abc import Callable, Mapping
from typing import Any

from squall.protocols import FAIL, INFO, OK, Result

SET_PREFIX = "s/"  # element e is the key s/<e>; the set is the range [s/, s0)
# The gRPC errors etcd returns before it proposes anything (the request was not applied).
# "no leader" comes only from the require-leader check that runs before the handler.
NOT_PROPOSED = ("no leader", "too many requests", "request is too large", "not capable")
# Sent as gRPC metadata "hasleader: true" (the gateway forwards Grpc-Metadata-* headers):
# a member that knows no leader refuses at once with "no leader" instead of holding the
# request until it times out. Measured: 0.01 s refused vs 7 s hung on a put. Every such
# hang was an ``info`` op, and a power cut of every member left dozens of them open on
# one key, enough that linearizability ran out of time (62 s, suite pass 2, seed 12).
# Writes only: a read changes nothing (its hang is a ``fail`` anyway), and a member cut
# off from its leader must still be asked, so that one answering serializable reads from
# stale state (the stale-read bug mode) is caught.
HEADERS = {"Content-Type": "application/json"}
WRITE_HEADERS = {**HEADERS, "Grpc-Metadata-hasleader": "true"}


class _NotSent(Exception):
    """The connection could not be opened: the request never left."""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def unb64(raw: str) -> str:
    return base64.b64decode(raw).decode()


def range_end(prefix: str) -> str:
    """The key just past every key starting with ``prefix`` (its last byte plus one)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class EtcdClient:
    """One worker's connection to its member; ``serializable`` names members read stale."""

    def __init__(
        self,
        addresses: Callable[[], Mapping[str, str]],
        worker: int,
        timeout: float = 1.0,
        connect_timeout: float = 0.3,
        serializable: frozenset[str] = frozenset(),
    ) -> None:
        self.addresses = addresses
        self.worker = worker
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.serializable = serializable
        self._conn: http.client.HTTPConnection | None = None
        self._node: str | None = None

    # -- the op protocols ------------------------------------------------------------
    def read(self, key: str) -> Result:
        kind, data, error, node = self._send("/v3/kv/range", self._range({"key": b64(key)}), True)
        if kind != OK:
            return Result(type=FAIL, error=error, node=node)
        kvs = data.get("kvs") or []
        value = json.loads(unb64(kvs[0]["value"])) if kvs else None
        return Result(type=OK, value=value, node=node)

    def write(self, key: str, value: Any) -> Result:
        body = {"key": b64(key), "value": b64(json.dumps(value))}
        kind, _, error, node = self._send("/v3/kv/put", body, False)
        return Result(type=kind, value=value, error=error, node=node)

    def cas(self, key: str, old: Any, new: Any) -> Result:
        body = {
            "compare": [
                {
                    "key": b64(key),
                    "target": "VALUE",
                    "result": "EQUAL",
                    "value": b64(json.dumps(old)),
                }
            ],
            "success": [{"requestPut": {"key": b64(key), "value": b64(json.dumps(new))}}],
        }
        kind, data, error, node = self._send("/v3/kv/txn", body, False)
        if kind == OK and not data.get("succeeded"):
            return Result(type=FAIL, value=[old, new], error="precondition_failed", node=node)
        return Result(type=kind, value=[old, new], error=error, node=node)

    def add(self, element: int) -> Result:
        body = {"key": b64(f"{SET_PREFIX}{element}"), "value": b64(str(element))}
        kind, _, error, node = self._send("/v3/kv/put", body, False)
        return Result(type=kind, value=element, error=error, node=node)

    def read_all(self) -> Result:
        body = self._range({"key": b64(SET_PREFIX), "range_end": b64(range_end(SET_PREFIX))})
        kind, data, error, node = self._send("/v3/kv/range", body, True)
        if kind != OK:
            return Result(type=FAIL, error=error, node=node)
        values = sorted(int(unb64(kv["value"])) for kv in data.get("kvs") or [])
        return Result(type=OK, value=values, node=node)

    # -- the wire -----------------------------------------------------------------------
    def _range(self, body: dict[str, Any]) -> dict[str, Any]:
        # Decided when the op is built, for the member it will be sent to first.
        if self._home() in self.serializable:
            body["serializable"] = True
        return body

    def _home(self) -> str:
        nodes = sorted(self.addresses())
        return nodes[self.worker % len(nodes)]

    def _send(self, path: str, body: Any, read: bool) -> tuple[str, Any, str | None, str]:
        """(ok|fail|info, decoded answer, error, member) for one request sent at most once."""
        nodes = sorted(self.addresses())
        first = nodes.index(self._home())
        payload = json.dumps(body).encode()
        for node in nodes[first:] + nodes[:first]:  # only a request never sent moves on
            try:
                status, data = self._exchange(node, path, payload, read)
            except _NotSent:
                continue
            except (OSError, http.client.HTTPException) as exc:
                self._close()
                return (FAIL if read else INFO), None, _short(exc), node
            return self._classify(status, data, read, node)
        return FAIL, None, "no member accepted the connection", nodes[first]

    def _exchange(self, node: str, path: str, payload: bytes, read: bool) -> tuple[int, bytes]:
        if self._node != node or self._conn is None or self._conn.sock is None:
            self._close()
            host, _, port = self.addresses()[node].rpartition(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=self.connect_timeout)
            try:
                conn.connect()
            except OSError as exc:
                conn.close()
                raise _NotSent() from exc
            assert conn.sock is not None
            conn.sock.settimeout(self.timeout)
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # http.client reconnects by itself when its socket is gone; it never does
            # here, since the socket is always opened above first.
            conn.auto_open = 0  # type: ignore[attr-defined]
            self._conn, self._node = conn, node
        conn = self._conn
        conn.request("POST", path, payload, HEADERS if read else WRITE_HEADERS)
        r = conn.getresponse()
        data = r.read()
        if r.will_close:
            self._close()
        return r.status, data

    def _classify(
        self, status: int, raw: bytes, read: bool, node: str
    ) -> tuple[str, Any, str | None, str]:
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {}
        if status == 200 and isinstance(data, dict):
            return OK, data, None, node
        message = str(data.get("error") or data.get("message") or f"http {status}")
        message = message.removeprefix("etcdserver: ")
        if read or status == 400 or any(m in message for m in NOT_PROPOSED):
            return FAIL, None, message, node
        return INFO, None, message, node

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn, self._node = None, None


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) < 120 else text[:117] + "..."
