"""Small Docker helpers shared by the docker backend and the cleanup sweep.

The SDK's names come from ``docker.client``, not ``docker``: the repository's
own ``docker/`` folder (compose configs) looks like a namespace package to
mypy and hides the SDK's top-level names.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import docker.errors
from docker.client import DockerClient, from_env
from docker.models.containers import Container

from squall.cluster.base import ClusterError
from squall.util import unpack_dir

LABEL_RUN = "squall.run"
LABEL_NODE = "squall.node"
LABEL_OWNER = "squall.owner_pid"
LABEL_CREATED = "squall.created"
LABEL_TMP = "squall.tmpdir"  # host directory holding the node configs, removed by cleanup


def docker_client() -> DockerClient:
    try:
        return from_env(version="auto")
    except docker.errors.DockerException as exc:
        raise ClusterError(
            f"cannot reach the Docker engine ({exc}); start Docker or use the local backend"
        ) from None


def quietly(action: Callable[[], object]) -> bool:
    """Runs a removal that may race with another remover; False if it was already gone."""
    try:
        action()
        return True
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        if "removal" not in str(exc) and "No such" not in str(exc):
            raise
        return False


def copy_out(container: Container, path: str, target: Path) -> None:
    """Copies directory ``path`` of a container (running or not) to ``target`` on the host."""
    stream, _stat = container.get_archive(path)
    with tempfile.TemporaryDirectory(prefix="squall-collect-") as tmp:
        tar_path = Path(tmp) / "data.tar"
        with open(tar_path, "wb") as f:
            for chunk in stream:
                f.write(chunk)
        unpack_dir(tar_path, Path(path).name, target)  # the archive's root is the directory's name
