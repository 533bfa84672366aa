"""What the store's tests share: a leader-following client and bounded waits."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import requests

from squall.cluster.base import Cluster
from squall.systems.aurora.store.config import Config
from squall.systems.aurora.store.raft import Raft
from squall.systems.aurora.store.wal import Wal
from squall.systems.aurora.system import admin_headers
from squall.util import WaitTimeout, wait_until
from tests.aurora import get, node_url

T = TypeVar("T")


def wait_for(
    what: str, fn: Callable[[], T | None], timeout: float = 15.0, every: float = 0.05
) -> T:
    """Polls ``fn`` until it returns something truthy; fails naming ``what`` never happened.

    The tests' face of the suite's one bounded wait (``squall.util.wait_until``)."""
    last: list[Any] = [None]

    def seen() -> T | None:
        last[0] = fn()
        return last[0]

    try:
        return wait_until(seen, timeout, what, every)
    except WaitTimeout as exc:
        raise AssertionError(f"{exc} (last seen: {last[0]!r})") from None


class Client:
    """Sends each request to the current leader, retrying while there is none."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.http = requests.Session()

    def leader(self, timeout: float = 15.0) -> str:
        found = self.cluster.leader(timeout)
        assert found, f"no leader agreed by a majority within {timeout:.0f}s"
        return found

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        node: str | None = None,
        timeout: float = 15.0,
    ) -> requests.Response:
        deadline = time.monotonic() + timeout
        while True:
            target = node or self.leader()
            # Admin calls are signed with the cluster secret, as the suite signs them.
            signed = (
                admin_headers(self.cluster.spec.secret, path) if path.startswith("/admin/") else {}
            )
            try:
                r = self.http.request(
                    method,
                    node_url(self.cluster, target) + path,
                    json=body,
                    headers=signed,
                    timeout=5,
                )
                retry = r.status_code in (421, 503) and node is None
            except requests.ConnectionError:
                retry = node is None
                if not retry:
                    raise
            if not retry or time.monotonic() > deadline:
                return r
            time.sleep(0.05)

    def put(self, key: str, value: Any, request_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"value": value}
        if request_id:
            body["request_id"] = request_id
        r = self.call("PUT", f"/kv/{key}", body)
        assert r.status_code == 200, f"put {key}={value!r} failed: {r.status_code} {r.text}"
        return r.json()

    def get(self, key: str) -> Any:
        r = self.call("GET", f"/kv/{key}")
        assert r.status_code == 200, f"get {key} failed: {r.status_code} {r.text}"
        return r.json()["value"]


def digests(cluster: Cluster, nodes: list[str] | None = None) -> dict[str, Any]:
    return {n: get(cluster, n, "/digest") for n in (nodes or cluster.nodes)}


def converged(cluster: Cluster, nodes: list[str] | None = None) -> dict[str, Any] | None:
    """The nodes' digests if they all answer with the same index and digest, else None."""
    d = digests(cluster, nodes)
    values = {(v["index"], v["digest"]) if v else None for v in d.values()}
    return d if len(values) == 1 and None not in values else None


def lone_raft(data_dir: Path, node: str = "n1", nodes: int = 3, **timing: Any) -> Raft:
    """A Raft of ``node`` over a fresh log in ``data_dir``, its peers at addresses nobody serves."""
    cfg = Config(
        id=node,
        data_dir=data_dir,
        peers={f"n{i}": f"http://127.0.0.1:{9000 + i}" for i in range(1, nodes + 1)},
        **timing,
    )
    wal = Wal(data_dir / "raft.log")
    wal.open()
    return Raft(cfg, wal, data_dir / "raft-meta.json")
