"""The seam: what a system under test, its client and a cluster backend promise each other.

This is the ground floor with ``squall.history``: it imports nothing of the
suite above it, and everything above may import it. A system under test is
described to Squall by one object implementing ``System`` (Jepsen's ``db``):
how to build or install a node, the command and files for node *i* of *n*,
which ports it listens on, how to ask a node who leads, what to collect
after a run, which bug modes it offers and which faults cannot apply to it.
Its ``Client`` is the one place where the outcome of an operation is decided
by the rule every client here follows: ``fail`` only when the system
certainly did not apply the request, ``info`` whenever it might have.

Workloads talk to small op protocols (``RegisterClient``, ``SetClient``),
never to a system's wire format, so the register and set workloads run
unchanged on any system whose client implements them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

OK, FAIL, INFO = "ok", "fail", "info"


# -- results of client operations ----------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """The outcome of one client operation.

    ``type`` is ok, fail (the system certainly did not apply it) or info
    (it may have). ``value`` is what an ok read returned; ``node`` is the node
    that answered or was tried last; ``error`` a short reason for fail/info.
    """

    type: str
    value: Any = None
    error: str | None = None
    node: str | None = None
    # The id the system logs the request under, where its client sends one: it
    # lets an info op be resolved from the system's own log after the run
    # (the System's optional ``committed`` below).
    request_id: str | None = None


@runtime_checkable
class RegisterClient(Protocol):
    """Keyed registers: what the register workload (and linearizability) needs."""

    def read(self, key: str) -> Result: ...

    def write(self, key: str, value: Any) -> Result: ...

    def cas(self, key: str, old: Any, new: Any) -> Result: ...


@runtime_checkable
class SetClient(Protocol):
    """A grow-only set of integers: add one, read them all."""

    def add(self, element: int) -> Result: ...

    def read_all(self) -> Result:
        """ok with ``value`` the sorted list of every element present."""
        ...


# -- a node, as the backend describes it to the system and back -------------------


@dataclass(frozen=True, kw_only=True)
class Port:
    """One port a node listens on, by name (the number is the one inside a container)."""

    name: str
    number: int
    # Clients on the host reach it (a docker backend publishes it on 127.0.0.1);
    # otherwise only peers use it, and it is never published.
    client: bool = False


@dataclass(frozen=True, kw_only=True)
class NodeContext:
    """What a backend tells a system about the node it is about to start."""

    node: str
    nodes: tuple[str, ...]
    listen: Mapping[str, str]  # port name -> "host:port" to bind
    # port name -> peer -> "host:port" this node uses to reach that peer (a
    # link fault may route it through a proxy)
    peers: Mapping[str, Mapping[str, str]]
    data_dir: str  # where the node keeps what must survive a crash
    config_dir: str  # where its NodeSpec.files are written
    secret: str  # per-run cluster secret: never logged or reported
    bugs: tuple[str, ...] = ()  # bug modes switched on for this node
    options: Mapping[str, Any] = field(default_factory=dict)  # the system's own options
    # "container": inside a node image the system built (docker);
    # "process": a process of this machine's Python (the local backend);
    # "host": a machine of its own reached over SSH, with the image's packages
    # installed (``squall hosts prepare``) but not its Dockerfile lines: the
    # spec must say its whole environment, and its mounts are uploaded, not bound
    runtime: Literal["container", "process", "host"] = "container"


@dataclass(frozen=True, kw_only=True)
class NodeSpec:
    """How to start one node: argv, environment, and files written before it starts."""

    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)  # path (in config_dir) -> text
    # Like files, but holding the cluster secret: written readable by the node's user
    # only, never copied into the run directory, removed when the cluster goes down.
    secrets: Mapping[str, str] = field(default_factory=dict)
    # host path -> path in the node, read-only (code the system runs but does not bake in)
    mounts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ImageRecipe:
    """A node image built from a Debian rootfs with no registry: packages plus setup lines."""

    name: str  # image repository, e.g. "squall-node"
    packages: tuple[str, ...]
    dockerfile: str = ""  # lines appended after FROM (ENV, RUN, CMD)
    # Services the packages start by themselves on a host with an init system
    # (Debian's etcd-server starts etcd on its ports). A backend runs the server
    # itself, so ``squall hosts prepare`` stops and disables these, and a run on a
    # host where one is running is refused. Not part of the image (no init runs there).
    services: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Observation:
    """What one node says about itself: health, and who it thinks leads.

    ``leader`` is the id of the node it follows (or itself when it leads).
    ``extra`` carries what a system wants sampled through the run to explain
    a verdict (snapshotting, indexes): plain JSON values.
    """

    role: str | None = None  # "leader", "follower", "candidate", or None
    term: int | None = None
    leader: str | None = None
    applied_index: int | None = None
    commit_index: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = {
            k: v
            for k, v in (
                ("role", self.role),
                ("term", self.term),
                ("leader", self.leader),
                ("applied_index", self.applied_index),
                ("commit_index", self.commit_index),
            )
            if v is not None
        }
        return {**out, **self.extra}


@dataclass(frozen=True, kw_only=True)
class NodeNeeds:
    """What a fault needs in every node before the cluster starts, asked of the backend."""

    devices: tuple[str, ...] = ()  # "/dev/fuse"
    capabilities: tuple[str, ...] = ()  # "SYS_ADMIN"
    mounts: Mapping[str, str] = field(default_factory=dict)  # host path -> node path, read-only
    # An argv prefix that ends by exec'ing the argv after it; wrappers chain.
    # ``{data_dir}`` in it is replaced by the node's data directory.
    wrapper: tuple[str, ...] = ()
    wrap_last: bool = False  # must be the wrapper that execs the node itself
    # (src, dst) -> "host:port": src reaches dst's peer port there (a proxy)
    peer_routes: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # Node paths outside the data directory the fault writes (control files):
    # a container forgets them with itself, a shared host must have them removed.
    scratch: tuple[str, ...] = ()


# -- the system --------------------------------------------------------------------


class Cluster(Protocol):
    """What a system sees of a running cluster (the backend's public surface)."""

    nodes: list[str]

    def address(self, node: str, port: str | None = None) -> str: ...

    def is_running(self, node: str) -> bool: ...

    def exec(self, node: str, argv: Sequence[str], timeout: float = 30) -> tuple[int, str]: ...

    def collect(self, dest: Path, data: bool = False) -> None: ...


@runtime_checkable
class System(Protocol):
    """A system under test, described once (Jepsen's ``db``)."""

    name: str
    ports: tuple[Port, ...]
    peer_port: str  # the port name peers talk on (link faults proxy it)
    bugs: Mapping[str, str]  # --bug name -> what it makes the system do wrong
    unsupported: Mapping[str, str]  # fault name -> why it cannot apply here
    options: Mapping[str, Any]  # the system's own options and their defaults

    def image(self) -> ImageRecipe: ...

    def node(self, ctx: NodeContext) -> NodeSpec: ...

    def client(
        self, addresses: Callable[[], Mapping[str, str]], worker: int, options: Mapping[str, Any]
    ) -> object:
        """The client one worker uses; ``addresses`` gives each node's client "host:port"."""
        ...

    def observe(self, address: str, timeout: float) -> Observation | None:
        """What the node at ``address`` says about itself, or None if it does not answer."""
        ...


# Optional parts of a System, looked up with getattr and documented here:
#
#   workloads() -> Mapping[str, Callable[[int, Mapping[str, Any]], Workload]]
#       workloads only this system offers (the store's scheduler workload)
#   checkers(test: Mapping[str, Any]) -> Mapping[str, Checker]
#       checkers its runs need beside the workload's (the store's fidelity)
#   collect(cluster, dest: Path, restarts: Mapping[str, int]) -> Mapping[str, Mapping]
#       what to gather after the final heal, per node (written to nodes/<n>/final.json)
#   validate_options(options: Mapping[str, Any]) -> dict[str, Any]
#       the options checked and normalized; raise ValueError naming the fix
#   snapshot(address: str, timeout: float, secret: str) -> Mapping[str, Any]
#       start a snapshot now (disk-stall's ``snapshot: trigger``); ``secret`` is the
#       cluster's (NodeContext.secret), for systems whose admin calls are authenticated
#   failpoints() -> Mapping[str, str]; failpoint(address, timeout, secret, point, action,
#   at="now") -> Mapping; failpoint_hits(address, timeout) -> Mapping[str, int] | None
#       named crash/stall/error points in the system's own code (the failpoint nemesis)
#   refusal(log_tail: str) -> str | None
#       the line saying the node refused its data on start (power-cut wipes those)
#   standing() -> object with cluster_up/cluster_status/cluster_down
#       a cluster a person keeps running to poke at (``squall cluster ...``)
#   committed(nodes: Mapping[str, Mapping]) -> Mapping | None
#       from what ``collect`` gathered (nodes/<n>/final.json), which request ids
#       the system's log holds: {"source": str, "complete": bool, "why": str|None,
#       "committed": {request_id: [log index or None, took effect: bool]}}.
#       "complete" says an id missing from it was never committed. The
#       linearizability checker resolves info ops with it (squall.checkers.resolve).
OPTIONAL = (
    "workloads",
    "checkers",
    "collect",
    "validate_options",
    "snapshot",
    "refusal",
    "standing",
    "failpoints",
    "failpoint",
    "failpoint_hits",
    "committed",
)
