"""etcd, exactly as Debian ships it (``etcd-server`` 3.4.23 on bookworm), as a ``System``.

This adapter is the whole of what the suite knows about etcd, and the worked
example of testing a system nobody on the team wrote: the image recipe, the
static ``--initial-cluster`` command for member *i* of *n*, how a member's
``/v3/maintenance/status`` names the leader, the client (``client.py``), what
to collect after a run and the fidelity checker over it (``fidelity.py``),
and the bug modes, which are etcd's own switches:

``no-fsync``
    ``--unsafe-no-fsync``: the WAL and the backend are never fsynced
    (3.4.23 accepts the flag though ``--help`` does not list it), so a power
    cut of every member loses acknowledged writes.
``stale-read``
    serializable reads (``"serializable": true`` on a range): a member answers
    from its own state without asking the leader, so a member cut off from the
    majority answers with values the majority has already overwritten.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from squall.cluster.base import Cluster
from squall.protocols import ImageRecipe, NodeContext, NodeSpec, Observation, Port

CLIENT = Port(name="client", number=2379, client=True)
PEER = Port(name="peer", number=2380)  # raft between members: never published
ETCD = "/usr/bin/etcd"  # where Debian's package puts the server

OPTIONS: dict[str, Any] = {
    # Jepsen runs etcd with 100 to exercise snapshots; etcd's default is 100000,
    # which a one-minute run never reaches.
    "snapshot_count": 100,
    # etcd's heartbeat, and half its default election timeout: a follower calls an
    # election after a random wait in [election, 2 x election), so with 500 ms a lost
    # leader is replaced within ~1.1 s (1 s plus a vote and a heartbeat's commit), inside
    # the suite's 2 s failover bound; etcd's 1000 ms default came out at 2.34 s (seed 1).
    # 5 heartbeats per election timeout is the least etcd's tuning guide allows.
    "heartbeat_ms": 100,
    "election_ms": 500,
    # Pre-vote (off by default in 3.4, on from 3.5): with the leader cut off, a member
    # whose log is behind cannot win, yet each of its campaigns raised the term and
    # reset the up-to-date member's election timer, so no one was elected for 4 s
    # (terms 3 to 9, a 3-member correct run under load). A pre-vote that cannot win
    # raises no term.
    "pre_vote": True,
}
FLAGS = frozenset({"pre_vote"})  # the options that are switches, not counts

BUGS: dict[str, str] = {
    "no-fsync": "--unsafe-no-fsync: etcd never fsyncs its WAL or backend, so a power cut "
    "of every member loses acknowledged writes",
    "stale-read": "serializable range reads: a member answers from its own, possibly "
    "stale, state instead of confirming it with the leader (ReadIndex)",
}

UNSUPPORTED: dict[str, str] = {
    # Tried, not assumed: with the shim preloaded and its offset at +1 day, `date` in
    # this image printed tomorrow while etcd logged today. Go on linux/amd64 reads
    # CLOCK_REALTIME through the vDSO from its own runtime, never libc's clock_gettime.
    "clock": "etcd is a Go binary that reads the clock through the vDSO, not libc, so "
    "the preloaded clock shim cannot shift its time",
}


class EtcdSystem:
    """A static etcd cluster of 3 or 5 members, one per container."""

    name = "etcd"
    ports = (CLIENT, PEER)
    peer_port = PEER.name
    bugs: Mapping[str, str] = BUGS
    unsupported: Mapping[str, str] = UNSUPPORTED
    options: Mapping[str, Any] = OPTIONS

    def __init__(self) -> None:
        self._names: dict[str, str] = {}  # member id (hex) -> name, learned from member lists
        self._stale: set[str] = set()  # members read serializably (--bug stale-read)
        self._lock = threading.Lock()

    # -- the node ---------------------------------------------------------------
    def image(self) -> ImageRecipe:
        # The package's postinst makes an etcd user and a systemd unit; neither is
        # used: the backend runs the server as the container's first process.
        # On a host (--backend ssh) the package's unit would start a distro etcd on
        # 127.0.0.1:2379/2380, the ports a member binds: prepare stops and disables it.
        return ImageRecipe(name="squall-etcd", packages=("etcd-server",), services=("etcd",))

    def validate_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        merged = {**OPTIONS, **options}
        unknown = sorted(set(merged) - set(OPTIONS))
        if unknown:
            raise ValueError(
                f"etcd: unknown option {', '.join(unknown)}; known: {', '.join(sorted(OPTIONS))}"
            )
        for key in OPTIONS:
            value = merged[key]
            if key in FLAGS:
                if not isinstance(value, bool):
                    raise ValueError(f"etcd: {key} must be true or false, got {value!r}")
            elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"etcd: {key} must be a positive integer, got {value!r}")
        if merged["election_ms"] < 5 * merged["heartbeat_ms"]:
            raise ValueError(
                "etcd: election_ms must be at least 5 x heartbeat_ms (etcd's own advice); "
                f"got {merged['election_ms']} and {merged['heartbeat_ms']}"
            )
        return merged

    def node(self, ctx: NodeContext) -> NodeSpec:
        if ctx.runtime == "process":
            raise ValueError(
                "etcd cannot run as a local process (--backend local): use --backend docker "
                "(its node image), or --backend ssh on hosts where squall hosts prepare "
                "--system etcd installed Debian's etcd-server"
            )
        opts = {**OPTIONS, **ctx.options}
        peer, client = _where(ctx, PEER), _where(ctx, CLIENT)
        cluster = ",".join(f"{n}=http://{peer[n]}" for n in ctx.nodes)
        argv = [
            ETCD,
            f"--name={ctx.node}",
            f"--data-dir={ctx.data_dir}/etcd",
            f"--listen-client-urls=http://{ctx.listen[CLIENT.name]}",
            f"--advertise-client-urls=http://{client[ctx.node]}",
            f"--listen-peer-urls=http://{ctx.listen[PEER.name]}",
            f"--initial-advertise-peer-urls=http://{peer[ctx.node]}",
            f"--initial-cluster={cluster}",
            "--initial-cluster-state=new",
            # The token keeps members of two runs that share a name from joining each other.
            f"--initial-cluster-token=squall-{ctx.secret[:12]}",
            f"--snapshot-count={opts['snapshot_count']}",
            f"--heartbeat-interval={opts['heartbeat_ms']}",
            f"--election-timeout={opts['election_ms']}",
            f"--pre-vote={'true' if opts['pre_vote'] else 'false'}",
            "--logger=zap",
        ]
        if "no-fsync" in ctx.bugs:
            argv.append("--unsafe-no-fsync")
        # stale-read is how this member is read (serializable ranges), not a flag of
        # the server: the clients this system object makes read it that way.
        with self._lock:
            if "stale-read" in ctx.bugs:
                self._stale.add(ctx.node)
            else:
                self._stale.discard(ctx.node)
        return NodeSpec(argv=_routes(ctx) + argv)

    # -- talking to it ------------------------------------------------------------
    def client(
        self, addresses: Callable[[], Mapping[str, str]], worker: int, options: Mapping[str, Any]
    ) -> object:
        from squall.systems.etcd.client import EtcdClient

        return EtcdClient(
            addresses,
            worker=worker,
            timeout=float(options.get("timeout", 1.0)),
            serializable=frozenset(self._stale),
        )

    def observe(self, address: str, timeout: float) -> Observation | None:
        status = post_json(address, "/v3/maintenance/status", {}, timeout)
        if not isinstance(status, dict) or "header" not in status:
            return None
        me = member_hex(status["header"].get("member_id"))
        leader = member_hex(status.get("leader"))
        names = self._member_names(address, timeout, {i for i in (me, leader) if i})
        return Observation(
            role=None if leader is None else ("leader" if leader == me else "follower"),
            term=as_int(status.get("raftTerm")),
            leader=names.get(leader) if leader else None,
            applied_index=as_int(status.get("raftAppliedIndex")),
            commit_index=as_int(status.get("raftIndex")),
            extra={"revision": as_int(status["header"].get("revision"))},
        )

    def _member_names(self, address: str, timeout: float, ids: set[str]) -> dict[str, str]:
        """Member id -> name; asks the member list only for ids not seen yet.

        IDs are fixed for the life of a cluster (hashed from its --initial-cluster),
        so one list per run serves every later sample."""
        with self._lock:
            if ids <= set(self._names):
                return dict(self._names)
        got = post_json(address, "/v3/cluster/member/list", {}, timeout)
        members = got.get("members", []) if isinstance(got, dict) else []
        with self._lock:
            for m in members:
                mid = member_hex(m.get("ID"))
                if mid and m.get("name"):
                    self._names[mid] = str(m["name"])
            return dict(self._names)

    def snapshot(self, address: str, timeout: float, secret: str) -> dict[str, Any]:
        """Streams a point-in-time copy of the member's backend (``/v3/maintenance/snapshot``)
        to the end, for disk-stall's ``snapshot: trigger``; what it read, or the error.

        etcd's own raft snapshots need no trigger: one is cut every ``snapshot_count``
        applied entries (100 by default here, about every second under load), so a
        stall of a loaded member always lands on some. This adds the other disk-heavy
        path, a long read transaction over bbolt while its writes stall."""
        host, _, port = address.rpartition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        try:
            conn.request("POST", "/v3/maintenance/snapshot", b"{}")
            r = conn.getresponse()
            size = 0
            while chunk := r.read(1 << 16):
                size += len(chunk)
            return {"status": r.status, "bytes": size}
        except (OSError, http.client.HTTPException) as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            conn.close()

    def refusal(self, log_tail: str) -> str | None:
        """The line in which a member gave up on the data it found on start.

        etcd says so in three ways: a zap ``panic``/``fatal`` entry (a WAL it cannot
        read), a Go ``panic:``, or the runtime's ``fatal error:`` (seen after a power
        cut with --unsafe-no-fsync: bbolt's mmap of a file the cut shortened faults)."""
        said = [
            ln.strip()
            for ln in log_tail.splitlines()
            if '"level":"panic"' in ln
            or '"level":"fatal"' in ln
            or ln.startswith(("panic:", "fatal error:", "unexpected fault address"))
        ]
        return said[-1][:300] if said else None

    # -- what its runs need beside the generic parts --------------------------------
    def checkers(self, test: Mapping[str, Any]) -> dict[str, Any]:
        from squall.systems.etcd.fidelity import check_hashes

        return {"fidelity": check_hashes}

    def collect(self, cluster: Cluster, dest: Path, restarts: Mapping[str, int]) -> dict[str, Any]:
        from squall.systems.etcd.fidelity import collect_hashes

        return collect_hashes(self, cluster, dest, restarts)


def _where(ctx: NodeContext, port: Port) -> dict[str, str]:
    """Member -> the "host:port" every member names it by, for ``port``.

    Every member must write the same --initial-cluster (member IDs are hashed
    from it). In containers that is the container names, so a link fault's
    proxies are reached by a NAT rule in the sender instead (``_routes``). Real
    hosts rarely resolve each other's node ids, so there it is the inventory's
    address of each host, which the ssh backend hands over as the peers (it has
    no link fault, so they are never proxies)."""
    if ctx.runtime == "host":
        return {n: ctx.peers[port.name][n] for n in ctx.nodes}
    return {n: f"{n}:{port.number}" for n in ctx.nodes}


def _routes(ctx: NodeContext) -> list[str]:
    """An argv prefix sending this member's peer traffic through the link fault's proxies.

    etcd reaches a peer at the one URL the peer advertises to the whole cluster
    (``http://n2:2380``), so a proxy per (sender, receiver) pair cannot be written
    into the config. Instead each routed peer's name resolves, in this member only,
    to a private address of its own (``/etc/hosts``), and a NAT rule rewrites
    connections to it into the proxy's. NAT runs before the filter table, so a
    partition's drop of the proxy's port still cuts the link; a heal flushes only
    the filter table. Rewritten on every start (a restart gives a fresh network
    namespace). Ends by exec'ing etcd, which stays the container's first process.
    """
    if ctx.runtime == "host":
        return []  # peers are the hosts' own addresses, never proxies (``_where``)
    peer = PEER.number
    lines = []
    for i, dst in enumerate(ctx.nodes, start=1):
        addr = ctx.peers.get(PEER.name, {}).get(dst, f"{dst}:{peer}")
        if dst == ctx.node or addr == f"{dst}:{peer}":
            continue
        fake = f"10.254.254.{i}"  # never a real address here: only this rule answers it
        lines.append(f"grep -q '^{fake} {dst}$' /etc/hosts || echo '{fake} {dst}' >> /etc/hosts")
        lines.append(
            f"iptables -w -t nat -A OUTPUT -p tcp -d {fake} --dport {peer} "
            f"-j DNAT --to-destination {addr}"
        )
    if not lines:
        return []
    return ["sh", "-c", " && ".join(lines) + ' && exec "$@"', "etcd-link-routes"]


def member_hex(raw: Any) -> str | None:
    """A member id as etcd's own tools print it (hex); the gateway sends uint64 as a decimal
    string. None for 0, which is how a member says it knows no leader."""
    value = as_int(raw)
    return f"{value:x}" if value else None


def as_int(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def post_json(address: str, path: str, body: Any, timeout: float) -> Any:
    """One POST to the gateway on a fresh connection (status and collection calls, not load)."""
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        return json.loads(data) if r.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()
