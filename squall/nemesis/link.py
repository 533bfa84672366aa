"""Link faults: latency, bandwidth, resets and blackholes through Toxiproxy.

This kernel has no netem, so a slow or flaky link is made by routing traffic
through a Toxiproxy server and adding toxics to its proxies. Every ordered
pair of nodes gets a proxy ``<src>-<dst>`` and the node ``src`` is told (via
``spec.extra["peer_urls"]``) to reach ``dst`` through it; every node also
gets ``client-<node>``, which clients may use instead of the node's own URL
(``Link.client_url``), so client-to-node traffic can be slowed too.

Where the server runs, for the docker backend: as a process on the host,
listening for proxied traffic on the default bridge's gateway (docker0,
e.g. 172.17.0.1) and for its API on 127.0.0.1 only. The docker0 address
exists before the run's network does, so the proxy URLs can be written into
the node configs before the containers start, and containers on any bridge
network reach it; upstreams are node names, resolved at connect time on the
run's network, so a restarted node with a new address is followed. For the
local backend everything is on 127.0.0.1.
"""

from __future__ import annotations

import atexit
import ipaddress
import random
from typing import Any
from urllib.parse import urlsplit

import requests
from docker.client import from_env
from toxiproxy import Toxiproxy

from squall.cluster.base import Cluster, ClusterSpec
from squall.nemesis import toxiproxy_process
from squall.nemesis.base import Fault, NemesisError
from squall.nemesis.toxics import DEFAULTS

NODE_PORT = 8000
# What a toxic does when the schedule names only its type.
TOXIC_DEFAULTS: dict[str, dict[str, float]] = {
    "latency": {"latency": 200, "jitter": 50},
    "bandwidth": {"rate": 8},
    "timeout": {"timeout": 0},
    "reset_peer": {"timeout": 0},
    "slicer": {"average_size": 64, "size_variation": 32, "delay": 1000},
    "limit_data": {"bytes": 4096},
}


def docker0_gateway() -> str:
    """The host's address on Docker's default bridge: reachable from every container."""
    ipam = from_env(version="auto").networks.get("bridge").attrs["IPAM"]["Config"][0]
    # Docker omits Gateway when it chose the default: the subnet's first host.
    return str(ipam.get("Gateway") or ipaddress.ip_network(ipam["Subnet"])[1])


class Link(Fault):
    kind = "link"
    options = frozenset({"toxic", "attributes", "target", "nodes", "links", "stream", "toxicity"})

    def __init__(self, toxic: str = "latency", backend: str = "docker",
                 proxy_host: str | None = None) -> None:
        super().__init__()
        if toxic not in DEFAULTS:
            raise NemesisError(f"toxic {toxic!r} is unknown; known: {', '.join(DEFAULTS)}")
        self.default_toxic = toxic
        self.backend = backend
        self.proxy_host = proxy_host
        self.server: toxiproxy_process.ToxiproxyServerProcess | None = None
        self.listen: dict[str, str] = {}          # proxy name -> host:port
        self.toxics: list[tuple[str, str]] = []   # (proxy, toxic name) in effect
        self.cuts: list[tuple[str, str]] = []     # blackholes made for a partition
        self._serial = 0

    # -- before the cluster starts ----------------------------------------
    def configure(self, spec: ClusterSpec) -> None:
        nodes = spec.node_names()
        docker_net = f"squall-{spec.name}" if self.backend == "docker" else None
        host = self.proxy_host or (docker0_gateway() if self.backend == "docker" else "127.0.0.1")
        # Jitter, slicing and toxicity rolls in the server follow the run's seed.
        seed = random.Random(f"{self.seed}:toxiproxy").randrange(2**31)
        # The server outlives nothing: stopped by close(), or at exit if the
        # runner never got that far (a crash, Ctrl-C during up).
        atexit.register(self.close)
        self.server = toxiproxy_process.start(f"{spec.name}", "127.0.0.1", seed, docker_net,
                                              prefer_shopify=self.backend != "docker")
        if self.backend == "docker":
            upstreams = {n: f"{n}:{NODE_PORT}" for n in nodes}
        else:
            # Local nodes listen on 127.0.0.1 ports that must be known now, so
            # they are fixed here and handed to the backend (spec.extra["ports"]).
            ports = spec.extra.setdefault("ports", {n: toxiproxy_process.free_port(host)
                                                    for n in nodes})
            upstreams = {n: f"127.0.0.1:{ports[n]}" for n in nodes}
        peer_urls: dict[str, dict[str, str]] = spec.extra.setdefault("peer_urls", {})
        for src in nodes:
            for dst in nodes:
                if src == dst:
                    continue
                listen = self._create(f"{src}-{dst}", f"{host}:{toxiproxy_process.free_port(host)}",
                                      upstreams[dst])
                peer_urls.setdefault(src, {})[dst] = f"http://{listen}"
        spec.link_proxy = True

    def _api(self) -> Toxiproxy:
        if self.server is None:
            raise NemesisError("the link nemesis has no toxiproxy server: configure(spec) "
                               "must run before the cluster starts")
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
            up = urlsplit(cluster.client_url(node)).netloc
            name = f"client-{node}"
            if name in self.listen:
                continue
            self._create(name, f"127.0.0.1:{toxiproxy_process.free_port('127.0.0.1')}", up)

    def client_url(self, node: str) -> str:
        """A URL reaching ``node`` through its client proxy (for client link faults)."""
        return f"http://{self.listen[f'client-{node}']}"

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
                proxy.add_toxic(name=toxic, type=kind, stream=stream, toxicity=toxicity,
                                attributes=attributes)
        return {"targets": nodes, "leader": leader, "links": links, "proxies": proxies,
                "toxic": {"type": kind, "attributes": attributes, "streams": streams,
                          "toxicity": toxicity}}

    def cut(self, grudge: dict[str, set[str]]) -> list[str]:
        """Blackholes the peer proxies a grudge cuts; returns their names.

        With peers routed through proxies, iptables on a node sees the proxy's
        address, not the peer's, so a partition must also be made here. A node
        that drops a peer's packets breaks TCP both ways, so both proxies of
        the pair are blackholed, in both directions.
        """
        api = self._api()
        names = sorted({f"{a}-{b}" for dst, srcs in grudge.items() for src in srcs
                        for a, b in ((src, dst), (dst, src)) if f"{a}-{b}" in self.listen})
        for name in names:
            for stream in ("upstream", "downstream"):
                api.get_proxy(name).add_toxic(name=f"squall-cut-{stream}", type="timeout",
                                              stream=stream, attributes={"timeout": 0})
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
