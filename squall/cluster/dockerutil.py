"""Small Docker and /proc helpers shared by the docker backend and the cleanup sweep.

The SDK's names come from ``docker.client``, not ``docker``: the repository's
own ``docker/`` folder (compose configs) looks like a namespace package to
mypy and hides the SDK's top-level names.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import docker.errors
from docker.client import DockerClient, from_env
from docker.models.containers import Container

from squall.cluster.base import ClusterError

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
        with tarfile.open(tar_path) as tar:
            tar.extractall(tmp, filter="data")  # refuses absolute paths, .., devices
        # The archive's root is the directory's own name.
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(str(Path(tmp) / Path(path).name), str(target))


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (state) on; the name in () may hold spaces."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_stopped(pid: int) -> bool:
    """Whether ``pid`` is stopped by a signal (SIGSTOP): state T."""
    fields = _stat_fields(pid) if pid > 0 else None
    return bool(fields) and fields[0] == "T"  # type: ignore[index]


def process_start_time(pid: int) -> float | None:
    """When ``pid`` started (unix time), or None if unknown (no /proc)."""
    fields = _stat_fields(pid)
    try:
        ticks = int(fields[19])  # type: ignore[index]  # field 22 of stat
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
    except (TypeError, OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")
