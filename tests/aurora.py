"""The Aurora store, as the tests that exercise it directly build it: through the seam.

Backends take a ``System``; these helpers give the store's tests one place to
get it, and its raw ``/status`` (the store's own tests read more of it than a
generic ``Observation`` holds).
"""

from __future__ import annotations

import json
from typing import Any

import requests

from squall.cluster.base import ClusterSpec
from squall.cluster.local import LocalCluster
from squall.systems.aurora.store import peerauth
from squall.systems.aurora.system import AuroraSystem, get_json, status
from squall.systems.aurora.system import url as node_url

AURORA = AuroraSystem()

__all__ = [
    "AURORA",
    "docker_cluster",
    "get",
    "local_cluster",
    "node_url",
    "peer_post",
    "status",
]


def local_cluster(spec: ClusterSpec) -> LocalCluster:
    return LocalCluster(spec, AURORA)


def docker_cluster(spec: ClusterSpec, **kwargs: Any) -> Any:
    from squall.cluster.docker import DockerCluster

    return DockerCluster(spec, AURORA, **kwargs)


def get(cluster: Any, node: str, path: str, timeout: float = 1.0) -> Any:
    """GET a path of one node's API as JSON (None when it does not answer 200)."""
    return get_json(cluster.address(node), path, timeout)


def peer_post(
    cluster: Any,
    node: str,
    route: str,
    body: Any,
    sender: str,
    query: dict[str, str] | None = None,
    secret: str | None = None,
    to: str | None = None,
) -> requests.Response:
    """POSTs a Raft RPC to ``node``'s peer port as ``sender`` would, signed with the cluster's
    secret (or ``secret``), addressed to ``to`` (default: ``node``)."""
    params = {**(query or {}), "to": to or node}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    key = (secret if secret is not None else cluster.spec.secret).encode()
    signed = peerauth.headers(key, sender, to or node, route, params, data)
    return requests.post(
        f"http://{cluster.address(node, 'peer')}{route}",
        params=params,
        data=data,
        headers=signed,
        timeout=10,
    )
