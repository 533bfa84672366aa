"""Link faults: latency, bandwidth, resets and blackholes through Toxiproxy.

This kernel has no netem, so a slow or flaky link is made by routing traffic
through a Toxiproxy server and adding toxics to its proxies. Every ordered
pair of nodes gets a proxy ``<src>-<dst>`` to ``dst``'s peer port, and the
backend is asked (``NodeNeeds.peer_routes``) to tell ``src`` to reach ``dst``
through it; every node also gets ``client-<node>``, which clients may use
instead of the node's own address (``Link.client_address``), so client-to-node
traffic can be slowed too.

The server runs as a process on this machine, its API on 127.0.0.1 only,
listening for proxied traffic where the backend says nodes reach this
machine (``Cluster.proxy_host``: docker0's gateway for containers, which
exists before the run's network does, so routes can be written into the node
configs before the nodes start). Upstreams are what the backend gives
(``Cluster.peer_upstream``): node names resolved at connect time on the run's
network for docker (a restarted node with a new address is followed), fixed
loopback ports for the local backend.
"""

from __future__ import annotations

import atexit
import random
from collections.abc import Mapping, Sequence
from typing import Any

import requests
from toxiproxy import Toxiproxy

from squall.cluster.base import Cluster
from squall.nemesis import toxiproxy_process
from squall.nemesis.base import Fault, NemesisError
from squall.nemesis.toxics import DEFAULTS, ToxicError, parse_toxic
from squall.protocols import NodeNeeds
from squall.util import free_port

# What a toxic does when the schedule names only its type.
TOXIC_DEFAULTS: dict[str, dict[str, float]] = {
    "latency": {"latency": 200, "jitter": 50},
    "bandwidth": {"rate": 8},
    "timeout": {"timeout": 0},
    "reset_peer": {"timeout": 0},
    "slicer": {"average_size": 64, "size_variation": 32, "delay": 1000},
    "limit_data": {"bytes": 4096},
}


class Link(Fault):
    kind = "link"
    options = frozenset({"toxic", "attributes", "target", "nodes", "links", "stream", "toxicity"})

    def __init__(self, toxic: str = "latency", proxy_host: str | None = None) -> None:
        super().__init__()
        if toxic not in DEFAULTS:
            raise NemesisError(f"toxic {toxic!r} is unknown; known: {', '.join(DEFAULTS)}")
        self.default_toxic = toxic
        self.proxy_host = proxy_host
        self.server: toxiproxy_process.ToxiproxyServerProcess | None = None
        self.listen: dict[str, str] = {}  # proxy name -> host:port
        self.toxics: list[tuple[str, str]] = []  # (proxy, toxic name) in effect
        self.cuts: list[tuple[str, str]] = []  # blackholes made for a partition
        self._serial = 0

    # -- before the cluster starts ----------------------------------------
    def configure(self, cluster: Cluster) -> None:
        nodes = cluster.nodes
        host = self.proxy_host or cluster.proxy_host()
        # Jitter, slicing and toxicity rolls in the server follow the run's seed.
        seed = random.Random(f"{self.seed}:toxiproxy").randrange(2**31)
        # The server outlives nothing: stopped by close(), or at exit if the
        # runner never got that far (a crash, Ctrl-C during up).
        atexit.register(self.close)
        self.server = toxiproxy_process.start(
            f"{cluster.spec.name}",
            "127.0.0.1",
            seed,
            cluster.name_network(),
            prefer_shopify=cluster.name_network() is None,
        )
        # Known before anything starts: node names on a network that resolves them,
        # or ports the backend fixed up front.
        upstreams = {n: cluster.peer_upstream(n) for n in nodes}
        routes: dict[tuple[str, str], str] = {}
        for src in nodes:
            for dst in nodes:
                if src != dst:
                    routes[(src, dst)] = self._create(
                        f"{src}-{dst}", f"{host}:{free_port(host)}", upstreams[dst]
                    )
        cluster.spec.need(NodeNeeds(peer_routes=routes))

    def _api(self) -> Toxiproxy:
        if self.server is None:
            raise NemesisError(
                "the link nemesis has no toxiproxy server: configure(spec) "
                "must run before the cluster starts"
            )
        api = Toxiproxy()
        # toxiproxy-python keeps one API address per process (class level).
        api.update_api_consumer(self.server.host, self.server.port)
        return api

    def _create(self, name: str, listen: str, upstream: str) -> str:
        proxy = self._api().create(upstream=upstream, name=name, listen=listen, enabled=True)
        self.listen[name] = proxy.listen
        return str(proxy.listen)

    # -- once it runs ------------------------------------------------------
    def setup(self, cluster: Cluster, rng: random.Random) -> None:
        super().setup(cluster, rng)
        for node in cluster.nodes:
            name = f"client-{node}"
            if name in self.listen:
                continue
            self._create(name, f"127.0.0.1:{free_port('127.0.0.1')}", cluster.address(node))

    def client_address(self, node: str) -> str:
        """A "host:port" reaching ``node``'s client port through its proxy (client link faults)."""
        return self.listen[f"client-{node}"]

    def proxies_for(self, nodes: list[str], links: str) -> list[str]:
        out = []
        for name in sorted(self.listen):
            src, _, dst = name.partition("-")
            if src == "client":
                if links in ("clients", "both") and dst in nodes:
                    out.append(name)
            elif links in ("peers", "both") and (src in nodes or dst in nodes):
                out.append(name)
        return out

    @classmethod
    def validate_event(cls, params: Mapping[str, Any], nodes: Sequence[str]) -> None:
        super().validate_event(params, nodes)
        if params.get("links", "peers") not in ("peers", "clients", "both"):
            raise NemesisError(f"links {params['links']!r} must be peers, clients or both")
        body = {
            "type": params.get("toxic", "latency"),
            "attributes": params.get("attributes") or {},
            "stream": params.get("stream") or "downstream",
            "toxicity": params.get("toxicity", 1.0),
        }
        try:  # the very checks the proxy server makes when the toxic is added
            parse_toxic(body)
        except ToxicError as exc:
            raise NemesisError(f"link: {exc}") from None

    def start(self, params: dict[str, Any], leader: str | None) -> dict[str, Any]:
        kind = params.get("toxic", self.default_toxic)
        if kind not in TOXIC_DEFAULTS:
            raise NemesisError(f"toxic {kind!r} is unknown; known: {', '.join(TOXIC_DEFAULTS)}")
        attributes = {**TOXIC_DEFAULTS[kind], **(params.get("attributes") or {})}
        links = params.get("links", "peers")
        if links not in ("peers", "clients", "both"):
            raise NemesisError(f"links {links!r} must be peers, clients or both")
        streams = [params["stream"]] if params.get("stream") else ["upstream", "downstream"]
        toxicity = float(params.get("toxicity", 1.0))
        nodes = self.pick_nodes(params, leader)
        api = self._api()
        proxies = self.proxies_for(nodes, links)
        self._serial += 1
        for name in proxies:
            proxy = api.get_proxy(name)
            if proxy is None:
                raise NemesisError(f"proxy {name} vanished from the toxiproxy server")
            for stream in streams:
                toxic = f"squall-{self._serial}-{kind}-{stream}"
                self.toxics.append((name, toxic))
                proxy.add_toxic(
                    name=toxic, type=kind, stream=stream, toxicity=toxicity, attributes=attributes
                )
        return {
            "targets": nodes,
            "leader": leader,
            "links": links,
            "proxies": proxies,
            "toxic": {
                "type": kind,
                "attributes": attributes,
                "streams": streams,
                "toxicity": toxicity,
            },
        }

    def cut(self, grudge: dict[str, set[str]]) -> list[str]:
        """Blackholes the peer proxies a grudge cuts; returns their names.

        With peers routed through proxies, iptables on a node sees the proxy's
        address, not the peer's, so a partition must also be made here. A node
        that drops a peer's packets breaks TCP both ways, so both proxies of
        the pair are blackholed, in both directions.
        """
        api = self._api()
        names = sorted(
            {
                f"{a}-{b}"
                for dst, srcs in grudge.items()
                for src in srcs
                for a, b in ((src, dst), (dst, src))
                if f"{a}-{b}" in self.listen
            }
        )
        for name in names:
            for stream in ("upstream", "downstream"):
                api.get_proxy(name).add_toxic(
                    name=f"squall-cut-{stream}",
                    type="timeout",
                    stream=stream,
                    attributes={"timeout": 0},
                )
                self.cuts.append((name, f"squall-cut-{stream}"))
        return names

    def mend(self) -> None:
        """Removes every cut made by ``cut``."""
        api = self._api()
        cuts, self.cuts = self.cuts, []
        for proxy, toxic in cuts:
            try:
                api.get_proxy(proxy).destroy_toxic(toxic)
            except Exception:  # noqa: BLE001 - already gone is mended
                pass

    def pinned(self, params: Any, value: Any) -> dict[str, Any]:
        out = super().pinned(params, value)
        if isinstance(value.get("toxic"), dict):
            out["toxic"] = value["toxic"]["type"]
            out["attributes"] = value["toxic"]["attributes"]
        return out

    def stop(self, params: dict[str, Any]) -> dict[str, Any]:
        api = self._api()
        removed, self.toxics = self.toxics, []
        for proxy, toxic in removed:
            try:
                api.get_proxy(proxy).destroy_toxic(toxic)
            except Exception:  # noqa: BLE001 - already gone is healed
                pass
        return {"targets": sorted({p.partition("-")[2] for p, _ in removed})}

    def teardown(self) -> None:
        if self.server is None:
            return
        try:
            requests.post(f"{self.server.api}/reset", timeout=5)
        except requests.RequestException:
            pass
        self.toxics, self.cuts = [], []

    def close(self) -> None:
        """Stops the server: after the cluster is down (peers route through it)."""
        atexit.unregister(self.close)
        self.teardown()
        if self.server is not None:
            self.server.stop()
            self.server = None
