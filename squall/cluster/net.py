"""Network partitions the way Jepsen makes them: iptables DROP on the receiver.

A grudge maps each node to the nodes it must not hear from. For every node
with a grudge we append ``iptables -A INPUT -s <peer ip> -j DROP`` inside its
own network namespace. Dropping (not rejecting) on INPUT is deliberate: the
sender sees silence, exactly like a cut cable, so its TCP connections hang
and time out instead of failing fast with a reset that a real partition
would never send.

The special name ``client`` in a grudge stands for the host (the bridge
gateway, where every client and the runner's own probes come from). Without
it, a partition only cuts node-to-node traffic and clients can still reach
every node — which is what most tests want: clients see each side of the
split, and the checker judges what each side answered.

Rules live in the container's network namespace. Docker builds a new one
when a killed container starts again (verified: the rules are gone and the
address may change), so the backend re-applies the active grudge after each
start; see ``DockerCluster.start``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from squall.cluster.base import Cluster, ClusterError, Grudge

CLIENT = "client"  # grudge member meaning "the host": clients and the runner

HEAL_COMMANDS: list[list[str]] = [["iptables", "-F", "-w"], ["iptables", "-X", "-w"]]


def validate_grudge(grudge: Grudge, nodes: Iterable[str]) -> None:
    """Raises ClusterError if the grudge names a node the cluster does not have."""
    known = set(nodes)
    for node, peers in grudge.items():
        if node not in known:
            raise ClusterError(
                f"grudge names node {node!r}, which this cluster lacks; nodes are {sorted(known)}"
            )
        if isinstance(peers, str):
            raise ClusterError(
                f"grudge[{node!r}] is the string {peers!r}; it must be a set of node names"
            )
        unknown = set(peers) - known - {CLIENT}
        if unknown:
            raise ClusterError(
                f"grudge[{node!r}] names {sorted(unknown)}, unknown; use node names "
                f"{sorted(known)} or {CLIENT!r} for the host"
            )


def drop_commands(
    grudge: Grudge,
    ips: Mapping[str, str],
    gateway: str,
    peer_routes: Mapping[tuple[str, str], str] | None = None,
    chains: Mapping[str, str] | None = None,
) -> dict[str, list[list[str]]]:
    """The iptables argv lists to run on each node to apply ``grudge``.

    Pure: ``ips`` maps node -> its current address on the cluster network,
    ``gateway`` is the host's address on it (the source of client traffic),
    ``peer_routes`` the "host:port" (a proxy) through which a node reaches a
    peer, for the pairs that do not go direct. ``chains`` puts the rules of
    INPUT and OUTPUT into chains of their own (a real host's firewall is
    not ours to flush; see ``host_heal_commands``).
    """
    out: dict[str, list[list[str]]] = {}

    def add(node: str, rule: list[str]) -> None:
        hook, *match = rule
        chain = (chains or {}).get(hook, hook)
        out.setdefault(node, []).append(["iptables", "-A", chain, *match, "-j", "DROP", "-w"])

    for node in sorted(grudge):
        for peer in sorted(grudge[node]):
            if peer == node:
                continue  # a node never drops its own traffic (loopback stays up)
            add(node, ["INPUT", "-s", gateway if peer == CLIENT else ips[peer]])
            if peer != CLIENT and peer_routes:
                for src, dst in [(peer, node), (node, peer)]:
                    proxy = _proxy_of(peer_routes.get((src, dst)))
                    if proxy:
                        add(src, ["OUTPUT", "-p", "tcp", "-d", proxy[0], "--dport", str(proxy[1])])
    return out


def host_heal_commands(chains: Mapping[str, str], ssh_port: int) -> list[list[str]]:
    """Empties a host's own chains, keeping the control machine's SSH out of every cut.

    On a host the runner's SSH connection arrives on INPUT from the same
    address as the clients: a grudge naming ``client`` would cut the backend
    off its own host. The RETURN for the SSH port comes before any DROP.
    """
    return [
        ["iptables", "-F", chains["INPUT"], "-w"],
        [
            "iptables",
            "-A",
            chains["INPUT"],
            "-p",
            "tcp",
            "--dport",
            str(ssh_port),
            "-j",
            "RETURN",
            "-w",
        ],
        ["iptables", "-F", chains["OUTPUT"], "-w"],
    ]


def _proxy_of(route: str | None) -> tuple[str, int] | None:
    """(host, port) of the proxy a peer route goes through, or None if it goes direct.

    Proxied traffic (Toxiproxy for link faults) reaches the peer from the
    proxy's address, so an INPUT rule on the peer's own address misses it.
    The proxy has one listening port per (src, dst) pair, so dropping the
    sender's packets to that port cuts exactly that pair's RPCs; cutting both
    pairs' ports matches what a direct INPUT drop does to HTTP round trips
    (a request or its answer is lost either way).
    """
    if not route:
        return None
    host, _, port = route.rpartition(":")
    return host, int(port)


# Runs inside a node: tries a TCP connection to every target at once and
# prints {target: bool}. Any answer counts as reachable, a refused connection
# too (a RST came back): the question is whether packets get through, not
# whether the node is healthy, and TCP works for any system's peer port.
# Only silence (a timeout) means cut.
_PROBE = r"""
import json, socket, sys, threading
targets, timeout = json.loads(sys.argv[1]), float(sys.argv[2])
seen = {}
def probe(name, addr):
    host, _, port = addr.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
        seen[name] = True
    except ConnectionRefusedError:
        seen[name] = True
    except Exception:
        seen[name] = False
threads = [threading.Thread(target=probe, args=item) for item in targets.items()]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(seen))
"""


def probe_argv(targets: Mapping[str, str], timeout: float) -> list[str]:
    """argv that, run inside a node, prints which of ``targets`` (name -> "host:port") answer."""
    return ["python3", "-c", _PROBE, json.dumps(dict(targets)), str(timeout)]


def parse_probe(output: str) -> dict[str, bool]:
    """Reads the probe's output (its last line is the JSON verdict)."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    if not lines:
        raise ClusterError("the reachability probe printed nothing; is python3 in the node image?")
    try:
        return {k: bool(v) for k, v in json.loads(lines[-1]).items()}
    except ValueError:
        raise ClusterError(f"the reachability probe printed no JSON: {output[-500:]!r}") from None


def reachability(
    cluster: Cluster, urls_of: Callable[[str], Mapping[str, str]], timeout: float = 1.0
) -> dict[tuple[str, str], bool]:
    """Probes every running node -> node pair from inside the nodes, all sources at once.

    ``urls_of(src)`` gives the "host:port" ``src`` uses for each node (direct
    or through a proxy); ``(a, b) -> True`` when a connection from a to b got any answer.
    """
    running = [n for n in cluster.nodes if cluster.is_running(n)]

    def probe(src: str) -> dict[str, bool]:
        _rc, out = cluster.exec(src, probe_argv(urls_of(src), timeout), timeout=timeout + 10)
        return parse_probe(out)

    with ThreadPoolExecutor(max_workers=max(1, len(running))) as pool:
        seen = dict(zip(running, pool.map(probe, running), strict=True))
    return {(a, b): seen[a][b] for a in running for b in cluster.nodes if a != b}
