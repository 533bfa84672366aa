"""The one interface every cluster backend implements, for any system.

The runner, the nemeses and the clients see only this: they never learn
whether a node is a container or a local process, nor what the system is.
A backend is parameterised by a ``System`` (``squall.protocols``): the system
says what to run and how to ask a node who leads; the backend says where
(addresses, data directories) and does the faults. A backend that cannot
do something (the local backend cannot drop packets) says so in
``supports``, and the runner refuses the combination before the run starts.
"""

from __future__ import annotations

import abc
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from squall.protocols import NodeContext, NodeNeeds, NodeSpec, Observation, System
from squall.util import WaitTimeout, wait_until

Grudge = Mapping[str, set[str]]  # node -> nodes whose packets it drops


class ClusterError(RuntimeError):
    """The cluster could not do what was asked; the message says why and what to try."""


@dataclass(kw_only=True)
class ClusterSpec:
    """What to start: shared by every backend, whatever the system."""

    name: str  # run id; labels and names derive from it
    nodes: int = 5
    options: dict[str, Any] = field(default_factory=dict)  # the system's own options
    bugs: Sequence[str] = ()
    bug_nodes: Sequence[str] = ()  # empty = every node
    data_root: Path | None = None  # where node data lives on the host (local backend, logs)
    inventory: str | None = None  # the hosts file of a backend that drives real hosts (ssh)
    # What faults need in every node (a FUSE device, a wrapper, peer routes),
    # asked before ``up``; see ``need``.
    needs: list[NodeNeeds] = field(default_factory=list)
    # The per-run cluster secret peers sign their RPCs with: generated here,
    # handed to the nodes, never printed.
    secret: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)

    def node_names(self) -> list[str]:
        return [f"n{i}" for i in range(1, self.nodes + 1)]

    def bugs_for(self, node: str) -> list[str]:
        if not self.bug_nodes or node in self.bug_nodes:
            return list(self.bugs)
        return []

    def need(self, needs: NodeNeeds) -> None:
        """Asks for what a fault needs in the nodes (before the cluster starts)."""
        self.needs.append(needs)

    def peer_routes(self) -> dict[tuple[str, str], str]:
        routes: dict[tuple[str, str], str] = {}
        for n in self.needs:
            routes.update(n.peer_routes)
        return routes

    def wrapper(self, data_dir: str) -> list[str]:
        """Every fault's argv wrapper, chained; the one that must exec the node last comes last.

        Each wrapper ends by exec'ing the argv after it, so they compose and the
        node process stays the last exec (and PID 1 in a container).
        """
        ordered = sorted(self.needs, key=lambda n: n.wrap_last)
        return [a.replace("{data_dir}", data_dir) for n in ordered for a in n.wrapper]


class Cluster(abc.ABC):
    """A running (or startable) set of nodes of one system.

    ``supports`` names what this backend can do to its nodes (kill, pause,
    partition, proxy-peers, fuse, preload, files-when-stopped): faults ask for
    capabilities by these names (``squall.faults``), never by backend class.
    """

    supports: frozenset[str] = frozenset()
    kind: str = ""  # the backend's name, as --backend spells it

    def __init__(self, spec: ClusterSpec, system: System) -> None:
        self.spec = spec
        self.system = system
        self.nodes: list[str] = spec.node_names()
        self.ports = {p.name: p for p in system.ports}
        clients = [p.name for p in system.ports if p.client]
        if not clients:
            raise ClusterError(
                f"system {system.name} declares no client port; mark one Port(client=True)"
            )
        self.client_port = clients[0]

    # -- lifecycle -------------------------------------------------------
    @abc.abstractmethod
    def up(self) -> None:
        """Starts every node and returns when the cluster has a leader."""

    @abc.abstractmethod
    def down(self) -> None:
        """Stops and removes everything this cluster created. Safe to call twice."""

    # -- addressing ------------------------------------------------------
    @abc.abstractmethod
    def address(self, node: str, port: str | None = None) -> str:
        """The "host:port" a client on this machine uses to reach ``node`` (its client port)."""

    @abc.abstractmethod
    def peer_upstream(self, node: str) -> str:
        """Where a proxy on this machine reaches ``node``'s peer port (for link faults).

        Known before ``up``: link faults create their proxies first."""

    def proxy_host(self) -> str:
        """The address on which a process of this machine is reachable from the nodes."""
        return "127.0.0.1"

    def name_network(self) -> str | None:
        """The network on which node names resolve to their current address, if any."""
        return None

    @abc.abstractmethod
    def data_dir(self, node: str) -> str:
        """The node's data directory, as the node sees it."""

    def node_spec(
        self,
        node: str,
        listen: dict[str, str],
        peers: dict[str, dict[str, str]],
        data_dir: str,
        config_dir: str,
        runtime: Any,
    ) -> NodeSpec:
        """The system's NodeSpec for ``node``, with every fault's peer route applied."""
        routes = self.spec.peer_routes()
        peer = self.system.peer_port
        routed = {
            name: {
                dst: (routes.get((node, dst), addr) if name == peer else addr)
                for dst, addr in by_node.items()
            }
            for name, by_node in peers.items()
        }
        ctx = NodeContext(
            node=node,
            nodes=tuple(self.nodes),
            listen=listen,
            peers=routed,
            data_dir=data_dir,
            config_dir=config_dir,
            secret=self.spec.secret,
            bugs=tuple(self.spec.bugs_for(node)),
            options=dict(self.spec.options),
            runtime=runtime,
        )
        return self.system.node(ctx)

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
        raise ClusterError(f"the {self.kind} backend cannot partition the network")

    def heal(self) -> None:  # noqa: B027 - optional: backends without partitions have nothing to heal
        """Removes every network fault."""

    def read_file(self, node: str, path: str) -> bytes | None:
        """A file of the node's, even while it is stopped; None if it does not exist."""
        raise ClusterError(f"the {self.kind} backend cannot read the files of a stopped node")

    def write_file(self, node: str, path: str, data: bytes) -> None:
        """Writes a file into the node, even while it is stopped."""
        raise ClusterError(f"the {self.kind} backend cannot write the files of a stopped node")

    @abc.abstractmethod
    def logs(self, node: str, since: float | None = None) -> str:
        """The node's output (since a unix time, when given)."""

    @abc.abstractmethod
    def collect(self, dest: Path, data: bool = False) -> None:
        """Copies node logs (and data, if asked) into ``dest/<node>/``."""

    @abc.abstractmethod
    def is_running(self, node: str) -> bool: ...

    # -- observation (through the system) ----------------------------------
    def observe(self, node: str, timeout: float = 1.0) -> Observation | None:
        """What the node says about itself, or None if it does not answer in time."""
        try:
            return self.system.observe(self.address(node), timeout)
        except ClusterError:
            return None

    def leader(self, timeout: float = 10.0) -> str | None:
        """The node that a majority agrees leads the newest term, or None in time."""
        try:
            return wait_until(self._agreed_leader, timeout, "a leader agreed by a majority")
        except WaitTimeout:
            return None

    def _agreed_leader(self) -> str | None:
        seen = {n: o for n in self.nodes if (o := self.observe(n, 0.5)) is not None}
        leaders = [(o.term or 0, n) for n, o in seen.items() if o.role == "leader"]
        if not leaders:
            return None
        term, best = max(leaders)
        agree = sum(1 for o in seen.values() if (o.term or 0) == term and o.leader == best)
        return best if agree > len(self.nodes) // 2 else None

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Waits until every node answers and a majority agrees on a leader."""
        try:
            wait_until(
                lambda: all(self.observe(n, 0.5) for n in self.nodes) and self._agreed_leader(),
                timeout,
                "a healthy cluster",
                every=0.1,
            )
        except WaitTimeout:
            missing = [n for n in self.nodes if not self.observe(n, 0.5)]
            raise ClusterError(
                f"cluster {self.spec.name} not healthy after {timeout:.0f}s: "
                + (
                    f"no answer from {', '.join(missing)}"
                    if missing
                    else "no leader agreed by a majority"
                )
            ) from None

    def wait_healthy_or_explain(self, timeout: float) -> None:
        """``wait_healthy``, and if it fails, the last log lines of every silent node with it."""
        try:
            self.wait_healthy(timeout)
        except ClusterError as exc:
            silent = [n for n in self.nodes if not self.observe(n, 0.5)] or self.nodes
            tails = "\n".join(
                f"--- {n} (last lines of its log) ---\n{self.log_tail(n)}" for n in silent
            )
            raise ClusterError(f"{exc}\n{tails}") from None

    def log_tail(self, node: str, lines: int = 20) -> str:
        """The last lines of the node's output."""
        return "\n".join(self.logs(node).splitlines()[-lines:])

    def __enter__(self) -> Cluster:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()
