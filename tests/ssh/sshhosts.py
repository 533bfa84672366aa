"""Five throwaway "hosts" for the ssh backend: containers running Debian's sshd, nothing else.

CI reaches no outside machine, so a host here is a container with its own
network namespace, built on the no-registry image path (a debootstrap
rootfs, ``squall.cluster.image``) from an ``ImageRecipe`` whose packages are
openssh-server, sudo and what ``squall hosts prepare`` would install for the
store and for etcd (one image: the same hosts serve both systems). The backend logs in as ``squall`` (passwordless sudo, as on a VM)
with a key generated per test session, and checks the hosts' keys against
a known_hosts file written here. Only this fixture uses Docker: to create
and remove the containers. Everything it creates is labelled like the
docker backend's objects, so the leftover sweep reaps it if this process
is killed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import yaml

from squall.cluster.dockerutil import LABEL_CREATED, LABEL_OWNER, LABEL_RUN, docker_client
from squall.cluster.image import ensure_image
from squall.protocols import ImageRecipe
from squall.systems.aurora.system import AuroraSystem
from squall.systems.etcd.system import EtcdSystem
from squall.util import wait_until

USER = "squall"
RECIPE = ImageRecipe(
    name="squall-sshd",
    packages=(
        "openssh-server",
        "sudo",
        *AuroraSystem().image().packages,
        *EtcdSystem().image().packages,
    ),
    dockerfile=(
        f"RUN useradd -m -s /bin/bash {USER} && "
        f"echo '{USER} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/{USER} && "
        f"chmod 0440 /etc/sudoers.d/{USER}\n"
        "RUN mkdir -p /run/sshd && ssh-keygen -A && printf '%s\\n' "
        "'AuthorizedKeysFile /etc/ssh/keys/%u' 'PasswordAuthentication no' 'UseDNS no' "
        "> /etc/ssh/sshd_config.d/squall.conf\n"
        'CMD ["/usr/sbin/sshd", "-D", "-e"]\n'
    ),
)


@dataclass(frozen=True)
class Hosts:
    inventory: Path
    addresses: list[str]
    containers: list[str]


def write_key(directory: Path) -> Path:
    """An ed25519 key pair for this session: ``id``, and ``keys/squall`` as sshd reads it."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    private = directory / "id"
    key.write_private_key(str(private))
    private.chmod(0o600)
    keys = directory / "keys"
    keys.mkdir()
    keys.chmod(0o755)  # sshd reads a user's keys as that user
    (keys / USER).write_bytes(key.export_public_key())
    (keys / USER).chmod(0o644)
    return private


@contextlib.contextmanager
def ssh_hosts(n: int = 5, progress=print) -> Iterator[Hosts]:  # type: ignore[no-untyped-def]
    client = docker_client()
    image = ensure_image(RECIPE, progress, client)
    tag = f"sshhosts-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    labels = {LABEL_RUN: tag, LABEL_OWNER: str(os.getpid()), LABEL_CREATED: str(int(time.time()))}
    work = Path(tempfile.mkdtemp(prefix="squall-sshhosts-"))
    made = []
    network = None
    try:
        key = write_key(work)
        network = client.networks.create(tag, driver="bridge", labels=labels)
        for i in range(1, n + 1):
            made.append(
                client.containers.run(
                    image,
                    name=f"{tag}-host{i}",
                    hostname=f"host{i}",
                    detach=True,
                    init=True,  # a real init reaps what the node leaves, as on a VM
                    network=tag,
                    labels=labels,
                    cap_add=["NET_ADMIN", "SYS_ADMIN"],  # what root has on a VM
                    devices=["/dev/fuse:/dev/fuse:rwm"],
                    volumes={str(work / "keys"): {"bind": "/etc/ssh/keys", "mode": "ro"}},
                )
            )
        addresses = []
        for c in made:
            c.reload()
            addresses.append(c.attrs["NetworkSettings"]["Networks"][tag]["IPAddress"])
        host_key = made[0].exec_run(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).output
        host_key = b" ".join(host_key.split()[:2]).decode()
        (work / "known_hosts").write_text("".join(f"{a} {host_key}\n" for a in addresses))
        for a in addresses:
            wait_until(lambda a=a: _listening(a), 30, f"sshd on {a} listening")
        inventory = work / "hosts.yaml"
        inventory.write_text(
            yaml.safe_dump(
                {
                    "user": USER,
                    "key": str(key),
                    "sudo": True,
                    "known_hosts": str(work / "known_hosts"),
                    "hosts": [{"node": f"n{i}", "host": a} for i, a in enumerate(addresses, 1)],
                }
            )
        )
        yield Hosts(inventory, addresses, [c.name for c in made])
    finally:
        for c in made:
            with contextlib.suppress(Exception):
                c.remove(force=True, v=True)
        if network is not None:
            with contextlib.suppress(Exception):
                network.remove()
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def _listening(address: str) -> bool:
    try:
        socket.create_connection((address, 22), timeout=1).close()
        return True
    except OSError:
        return False
