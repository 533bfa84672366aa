"""The store's HTTP client, with strict operation semantics, and its op protocols.

The one rule that keeps histories honest: an op is ``fail`` only when the
store certainly did not apply it, and ``info`` (indeterminate) whenever it
might have. So:

* connection refused / connect timeout: nothing was sent → the client tries
  another node (tenacity), and if none takes it, ``fail``;
* ``not_leader`` with a leader named: nothing was applied → re-sent to that
  leader within the same op; ``unavailable``, ``precondition_failed``,
  ``bad_request``, ``not_found``, ``too_large`` → ``fail``;
* a read timeout, a connection dropped after sending, the store's own
  ``timeout`` code, any other 5xx → ``info``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
import tenacity
from urllib3.exceptions import NewConnectionError

from squall.protocols import Result

SET_PREFIX = "s-"  # the store has no set type: element e is the key s-<e>

DEFINITE_FAILURES = {
    "not_leader",
    "unavailable",
    "precondition_failed",
    "bad_request",
    "not_found",
    "too_large",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    type: str  # ok | fail | info
    body: Any = None  # the decoded JSON answer (ok) or error object
    error: str | None = None  # short reason for fail/info
    node: str | None = None  # the node that answered (or was tried last)


class _NotSent(Exception):
    """The request never left: safe to try the next node."""


class StoreClient:
    """Talks to whichever node leads; one instance per worker thread."""

    def __init__(
        self,
        urls: Mapping[str, str] | Callable[[], Mapping[str, str]],
        timeout: float = 1.0,
        connect_timeout: float = 0.3,
        first: int = 0,
    ) -> None:
        self._urls = urls
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.session = requests.Session()
        nodes = sorted(self.urls())
        self.preferred = nodes[first % len(nodes)] if nodes else None
        # Each worker's own node, as Jepsen binds a client to a node. Reads start
        # there (and follow the store's redirect to the leader): a store that
        # wrongly answers reads locally is then read from every node, including a
        # partitioned old leader, instead of only from whichever node leads.
        self.home = self.preferred
        # Every write carries a request id unique in the run (the store logs it
        # with the entry and keeps it in its requests table), so an info write
        # can be looked up in the store's log after the run (committed.py).
        self.rid_prefix = f"w{first}."
        self.sent = 0

    def next_request_id(self) -> str:
        self.sent += 1
        return f"{self.rid_prefix}{self.sent}"

    def urls(self) -> Mapping[str, str]:
        return self._urls() if callable(self._urls) else self._urls

    def rotate(self) -> None:
        nodes = sorted(self.urls())
        if self.preferred in nodes:
            self.preferred = nodes[(nodes.index(self.preferred) + 1) % len(nodes)]
        elif nodes:
            self.preferred = nodes[0]

    # -- the op protocols (squall.protocols.RegisterClient, SetClient) -------------
    def read(self, key: str) -> Result:
        # Reads start at this worker's own node (a stale-read store then answers
        # from every node, a partitioned old leader included).
        out = self.call("GET", f"/kv/{key}", at_home=True)
        value = out.body.get("value") if out.type == "ok" and isinstance(out.body, dict) else None
        return Result(type=out.type, value=value, error=out.error, node=out.node)

    def write(self, key: str, value: Any) -> Result:
        rid = self.next_request_id()
        out = self.call("PUT", f"/kv/{key}", {"value": value, "request_id": rid})
        return _result(out, value, rid)

    def cas(self, key: str, old: Any, new: Any) -> Result:
        # A refused precondition is a definite fail with error "precondition_failed".
        rid = self.next_request_id()
        out = self.call("POST", f"/kv/{key}/cas", {"from": old, "to": new, "request_id": rid})
        return _result(out, [old, new], rid)

    def add(self, element: int) -> Result:
        return _result(self.call("PUT", f"/kv/{SET_PREFIX}{element}", {"value": element}), element)

    def read_all(self) -> Result:
        """One linearizable prefix read on the leader: every element present, sorted."""
        out = self.call("GET", f"/kv?prefix={SET_PREFIX}")
        if out.type != "ok" or not isinstance(out.body, dict):
            return Result(type=out.type, error=out.error, node=out.node)
        items = out.body.get("items", {})
        return Result(type="ok", value=sorted(int(v) for v in items.values()), node=out.node)

    # -- the store's own API ----------------------------------------------------------
    def call(self, method: str, path: str, body: Any = None, at_home: bool = False) -> Outcome:
        """One operation: returns its outcome, never raises for store/network trouble.

        ``at_home`` sends it to this worker's own node first rather than to the
        last known leader."""
        if at_home and self.home is not None:
            self.preferred = self.home
        try:
            return self._call_sending_once(method, path, body)
        except tenacity.RetryError:
            return Outcome("fail", error="no node accepted the connection", node=self.preferred)

    def _call_sending_once(self, method: str, path: str, body: Any) -> Outcome:
        # Retries only while nothing was sent (refused connections), moving to
        # the next node each time; the op's whole budget stays bounded.
        retry = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_NotSent),
            stop=tenacity.stop_after_attempt(len(self.urls()) + 1) | tenacity.stop_after_delay(2),
            wait=tenacity.wait_fixed(0.02),
            before_sleep=lambda _state: self.rotate(),
        )
        for attempt in retry:
            with attempt:
                return self._once(method, path, body, redirects=2)
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, method: str, path: str, body: Any, redirects: int) -> Outcome:
        node = self.preferred
        if node is None:
            return Outcome("fail", error="no nodes")
        url = self.urls()[node] + path
        try:
            r = self.session.request(
                method, url, json=body, timeout=(self.connect_timeout, self.timeout)
            )
        except requests.ConnectTimeout:
            raise _NotSent() from None
        except requests.ConnectionError as exc:
            if _refused(exc):
                raise _NotSent() from None
            self.rotate()
            return Outcome("info", error=f"connection lost: {_short(exc)}", node=node)
        except requests.Timeout:
            self.rotate()  # a paused or partitioned node: try another next time
            return Outcome("info", error="timeout", node=node)
        return self._classify(r, node, method, path, body, redirects)

    def _classify(
        self, r: requests.Response, node: str, method: str, path: str, body: Any, redirects: int
    ) -> Outcome:
        try:
            data = r.json()
        except ValueError:
            data = None
        if 200 <= r.status_code < 300:
            return Outcome("ok", body=data, node=node)
        err = (data or {}).get("error") if isinstance(data, dict) else None
        code = err.get("code") if isinstance(err, dict) else None
        if code == "not_leader":
            leader = err.get("leader") if isinstance(err, dict) else None
            if leader and leader in self.urls() and leader != node and redirects > 0:
                self.preferred = leader
                return self._once(method, path, body, redirects - 1)
            self.rotate()
            return Outcome("fail", body=err, error="not_leader", node=node)
        if code == "unavailable":
            # This node knows no leader (cut off, or deposed): another may. Staying put
            # sent every set worker to a partitioned old leader for 7.7 s while the
            # majority side had a new leader from the first second.
            self.rotate()
        if code in DEFINITE_FAILURES:
            return Outcome("fail", body=err, error=code, node=node)
        return Outcome("info", body=err, error=code or f"http {r.status_code}", node=node)


def _result(out: Outcome, value: Any, request_id: str | None = None) -> Result:
    return Result(type=out.type, value=value, error=out.error, node=out.node, request_id=request_id)


def _refused(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, NewConnectionError | ConnectionRefusedError):
            return True
        for arg in getattr(cur, "args", ()):
            if isinstance(arg, BaseException) and _refused(arg):
                return True
        cur = cur.__cause__ or cur.__context__
    return False


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 120 else text[:117] + "..."
