"""Removes what nemeses left behind, found by label.

Faults live in three places. Toxiproxy servers are host processes, labelled
on their command line (``--label squall.nemesis=<run> --owner <pid>``).
iptables rules, FUSE stalls and clock offsets live inside node containers,
labelled ``squall.run=<run>`` by the docker backend: they die with the
container (which ``squall.cluster.cleanup`` removes once its owner is gone),
and for a container that is still wanted, ``heal_containers`` undoes them in
place. Nothing here touches what it did not create.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from squall.nemesis import toxiproxy_process
from squall.nemesis.clock import OFFSET_FILE
from squall.nemesis.disk import CONTROL

# Each step is harmless where the fault was never configured.
HEAL_SCRIPT = " ; ".join(
    [
        "iptables -w -F",
        "iptables -w -X",
        f"if [ -d {CONTROL} ]; then echo pass > {CONTROL}/mode; fi",
        f"if [ -f {OFFSET_FILE} ]; then echo +0 > {OFFSET_FILE}; fi",
        "true",
    ]
)


@dataclass(frozen=True)
class Cleaned:
    toxiproxy_pids: list[int] = field(default_factory=list)
    healed_containers: list[str] = field(default_factory=list)


def heal_containers(run: str) -> list[str]:
    """Undoes partitions, disk stalls and clock skew in ``run``'s running containers."""
    from docker.client import from_env

    client = from_env(version="auto")
    healed = []
    for c in client.containers.list(filters={"label": f"squall.run={run}", "status": "running"}):
        c.exec_run(["sh", "-c", HEAL_SCRIPT])
        healed.append(c.name)
    return sorted(healed)


def cleanup(run: str | None = None, containers: bool = True) -> Cleaned:
    """Stops leftover toxiproxy servers and, for a named run, heals its containers.

    Without ``run``, only servers whose owning process is gone are stopped.
    """
    pids = toxiproxy_process.cleanup(run)
    healed = heal_containers(run) if run is not None and containers else []
    return Cleaned(pids, healed)


def describe(cleaned: Cleaned) -> str:
    parts = []
    if cleaned.toxiproxy_pids:
        parts.append(f"stopped toxiproxy servers {shlex.join(map(str, cleaned.toxiproxy_pids))}")
    if cleaned.healed_containers:
        parts.append(f"healed {', '.join(cleaned.healed_containers)}")
    return "; ".join(parts) or "nothing left behind"
