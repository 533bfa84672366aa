"""The one interface every cluster backend implements.

The runner, the nemeses and the clients see only this: they never learn
whether a node is a container or a local process. A backend that cannot do
something (the local backend cannot drop packets) says so in ``supports``,
and the runner refuses the combination before the run starts.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

Grudge = Mapping[str, set[str]]  # node -> nodes whose packets it drops


class ClusterError(RuntimeError):
    """The cluster could not do what was asked; the message says why and what to try."""


@dataclass
class ClusterSpec:
    """What to start: shared by every backend."""

    name: str                       # run id; labels and names derive from it
    nodes: int = 5
    snapshot_every: int = 1000
    snapshot_codec: str = "dump"
    digest_every: int = 100
    election_timeout_ms: tuple[int, int] = (300, 600)
    heartbeat_ms: int = 50
    bugs: Sequence[str] = ()
    bug_nodes: Sequence[str] = ()   # empty = every node
    data_root: Path | None = None   # where node data lives on the host (local backend, logs)
    link_proxy: bool = False        # route node-to-node traffic through Toxiproxy
    extra: dict[str, Any] = field(default_factory=dict)

    def node_names(self) -> list[str]:
        return [f"n{i}" for i in range(1, self.nodes + 1)]

    def bugs_for(self, node: str) -> list[str]:
        if not self.bug_nodes or node in self.bug_nodes:
            return list(self.bugs)
        return []


class Cluster(abc.ABC):
    """A running (or startable) set of store nodes."""

    supports: frozenset[str] = frozenset()

    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        self.nodes: list[str] = spec.node_names()
        self._http = requests.Session()

    # -- lifecycle -------------------------------------------------------
    @abc.abstractmethod
    def up(self) -> None:
        """Starts every node and returns when the cluster has a leader."""

    @abc.abstractmethod
    def down(self) -> None:
        """Stops and removes everything this cluster created. Safe to call twice."""

    # -- addressing ------------------------------------------------------
    @abc.abstractmethod
    def client_url(self, node: str) -> str:
        """The base URL a client on the host uses to reach ``node``."""

    # -- faults ----------------------------------------------------------
    @abc.abstractmethod
    def kill(self, node: str) -> None: ...

    @abc.abstractmethod
    def start(self, node: str) -> None: ...

    @abc.abstractmethod
    def pause(self, node: str) -> None: ...

    @abc.abstractmethod
    def resume(self, node: str) -> None: ...

    @abc.abstractmethod
    def exec(self, node: str, argv: Sequence[str], timeout: float = 30) -> tuple[int, str]: ...

    def partition(self, grudge: Grudge) -> None:
        raise ClusterError(f"the {type(self).__name__} backend cannot partition the network")

    def heal(self) -> None:  # noqa: B027 - optional: backends without partitions have nothing to heal
        """Removes every network fault."""

    @abc.abstractmethod
    def collect(self, dest: Path) -> None:
        """Copies node logs (and data, if asked) into ``dest/<node>/``."""

    @abc.abstractmethod
    def is_running(self, node: str) -> bool: ...

    # -- observation (HTTP; shared by every backend) ---------------------
    def status(self, node: str, timeout: float = 1.0) -> dict[str, Any] | None:
        """The node's /status, or None if it does not answer in time."""
        return self.get_json(node, "/status", timeout)

    def get_json(self, node: str, path: str, timeout: float = 1.0) -> Any:
        try:
            r = self._http.get(self.client_url(node) + path, timeout=timeout)
            if r.status_code != 200:
                return None
            return r.json()
        except (requests.RequestException, ValueError):
            return None

    def leader(self, timeout: float = 10.0) -> str | None:
        """The node that a majority agrees leads the newest term, or None in time."""
        deadline = time.monotonic() + timeout
        while True:
            found = self._agreed_leader()
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def _agreed_leader(self) -> str | None:
        statuses = [s for s in (self.status(n, 0.5) for n in self.nodes) if s]
        leaders = [s for s in statuses if s.get("role") == "leader"]
        if not leaders:
            return None
        best = max(leaders, key=lambda s: s.get("term", 0))
        term = best.get("term", 0)
        agree = sum(1 for s in statuses if s.get("term") == term and s.get("leader") == best["id"])
        return best["id"] if agree > len(self.nodes) // 2 else None

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Waits until every node answers and a majority agrees on a leader."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.status(n, 0.5) for n in self.nodes) and self._agreed_leader():
                return
            time.sleep(0.1)
        missing = [n for n in self.nodes if not self.status(n, 0.5)]
        raise ClusterError(
            f"cluster {self.spec.name} not healthy after {timeout:.0f}s: "
            + (f"no answer from {', '.join(missing)}" if missing else "no leader agreed by a majority")
        )

    def __enter__(self) -> Cluster:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()
