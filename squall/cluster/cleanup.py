"""Removes what runners killed with SIGKILL left behind.

``DockerCluster.down`` runs on normal exit and through ``atexit``, but
nothing runs after SIGKILL (or a crashed machine session). Every object the
docker backend creates is labelled with its run and the pid of its owner, so
leftovers are exactly the labelled objects whose owner no longer lives.
Objects whose owner still runs belong to someone's live test and are left
alone: several people and CI share one Docker engine.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
from functools import partial
from pathlib import Path

from docker.client import DockerClient

from squall import owner
from squall.cluster.dockerutil import (
    LABEL_CREATED,
    LABEL_OWNER,
    LABEL_RUN,
    LABEL_TMP,
    docker_client,
    quietly,
)
from squall.cluster.procs import alive_since


def owner_alive(labels: dict[str, str]) -> bool:
    """Whether the process that created an object (per its labels) still runs, or may.

    By the lock its owner holds (``squall.owner``), which works across PID
    namespaces; an owner that cannot be judged from here counts as alive, so
    nothing that may be someone's live run is removed. Objects made before
    owners held locks are judged by pid: a pid alone is not enough (after a
    reboot or a long day it may belong to another process), so a process that
    started after the object was created cannot be its owner.
    """
    if owner.TOKEN in labels:
        return owner.state(labels) != "dead"
    try:
        pid = int(labels.get(LABEL_OWNER, ""))
    except ValueError:
        return False  # unlabelled owner: nobody will ever clean it up but us
    return alive_since(pid, float(labels.get(LABEL_CREATED, "0") or 0))


def run_objects(run: str, client: DockerClient | None = None) -> list[str]:
    """Names of every container, network and volume labelled with ``run``, live or not."""
    client = client or docker_client()
    flt = {"label": f"{LABEL_RUN}={run}"}
    return (
        [c.name for c in client.containers.list(all=True, filters=flt)]
        + [n.name for n in client.networks.list(filters=flt)]
        + [v.name for v in client.volumes.list(filters=flt)]
    )


def cleanup_leftovers(client: DockerClient | None = None, only_run: str | None = None) -> list[str]:
    """Removes containers, networks and volumes of dead runners; returns their names.

    ``only_run`` limits the sweep to one run id (tests use it so they never
    touch another person's leftovers).
    """
    client = client or docker_client()
    label = LABEL_RUN if only_run is None else f"{LABEL_RUN}={only_run}"
    flt = {"label": label}
    removed: list[str] = []
    tmpdirs: set[str] = set()
    dead: set[str] = set()  # owner tokens whose objects were removed
    for c in client.containers.list(all=True, filters=flt):
        if not owner_alive(c.labels):
            tmpdirs.add(c.labels.get(LABEL_TMP, ""))
            dead.add(c.labels.get(owner.TOKEN, ""))
            if quietly(partial(c.remove, force=True, v=True)):
                removed.append(c.name)
    # Networks and volumes after containers: Docker refuses to remove them while in use.
    for n in client.networks.list(filters=flt):
        labels = n.attrs.get("Labels") or {}
        if not owner_alive(labels):
            tmpdirs.add(labels.get(LABEL_TMP, ""))
            dead.add(labels.get(owner.TOKEN, ""))
            if quietly(n.remove):
                removed.append(n.name)
    for v in client.volumes.list(filters=flt):
        labels = v.attrs.get("Labels") or {}
        if not owner_alive(labels) and quietly(partial(v.remove, force=True)):
            dead.add(labels.get(owner.TOKEN, ""))
            removed.append(v.name)
    left = {
        lb.get(owner.TOKEN, "")
        for lb in [c.labels for c in client.containers.list(all=True, filters=flt)]
        + [n.attrs.get("Labels") or {} for n in client.networks.list(filters=flt)]
    }
    for token in dead - left:
        owner.forget(token)  # its lock file, once nothing of it is left
    for tmp in sorted(t for t in tmpdirs if t):
        # Only our own config directories: never follow a label to anywhere else.
        if Path(tmp).name.startswith("squall-") and Path(tmp).is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    if only_run is None:
        removed += reap_fuse_orphans(client)
    return removed


# The FUSE layers of the disk-stall and power-cut nemeses, as bind-mounted into
# node containers (nemesis.disk.IN_CONTAINER; not imported: this sweep runs
# before any nemesis is loaded and must not need mfusepy).
FUSE_DAEMONS = ("/opt/squall-nemesis/stallfs.py", "/opt/squall-nemesis/lazyfs.py")
_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")


def fuse_orphans(container_ids: set[str], proc: Path = Path("/proc")) -> list[int]:
    """Pids of FUSE daemons of ours that belong to no container Docker still knows.

    A daemon holding a FUSE request when its container was killed can outlive
    it (an early power-cut design did: a PID 1 Docker could not kill). Docker
    then forgets the container, so no label leads to the process; its cgroup
    still names the container it ran in. A daemon in a container that still
    exists, running or not, is someone's live test and is left alone.
    """
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            cgroup = (entry / "cgroup").read_text()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if not any(a.decode(errors="replace").endswith(FUSE_DAEMONS) for a in argv):
            continue
        owner = _CONTAINER_ID.findall(cgroup)
        if not owner or not set(owner) & container_ids:
            found.append(int(entry.name))
    return sorted(found)


def reap_fuse_orphans(client: DockerClient | None = None, proc: Path = Path("/proc")) -> list[str]:
    """SIGKILLs orphaned FUSE daemons (their mounts go with their mount namespace)."""
    client = client or docker_client()
    known = {c.id for c in client.containers.list(all=True)}
    reaped = []
    for pid in fuse_orphans(known, proc):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
        reaped.append(f"orphaned FUSE daemon pid {pid}")
    return reaped


def main() -> None:
    for name in cleanup_leftovers():
        print(f"removed {name}")


if __name__ == "__main__":
    main()
