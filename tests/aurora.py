"""The Aurora store, as the tests that exercise it directly build it: through the seam.

Backends take a ``System``; these helpers give the store's tests one place to
get it, and its raw ``/status`` (the store's own tests read more of it than a
generic ``Observation`` holds).
"""

from __future__ import annotations

from typing import Any

from squall.cluster.base import ClusterSpec
from squall.cluster.local import LocalCluster
from squall.systems.aurora.system import AuroraSystem, get_json, status
from squall.systems.aurora.system import url as node_url

AURORA = AuroraSystem()

__all__ = ["AURORA", "docker_cluster", "get", "local_cluster", "node_url", "status"]


def local_cluster(spec: ClusterSpec) -> LocalCluster:
    return LocalCluster(spec, AURORA)


def docker_cluster(spec: ClusterSpec, **kwargs: Any) -> Any:
    from squall.cluster.docker import DockerCluster

    return DockerCluster(spec, AURORA, **kwargs)


def get(cluster: Any, node: str, path: str, timeout: float = 1.0) -> Any:
    """GET a path of one node's API as JSON (None when it does not answer 200)."""
    return get_json(cluster.address(node), path, timeout)
