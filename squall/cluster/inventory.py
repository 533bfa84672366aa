"""The inventory of real hosts the ssh backend drives: one YAML file, checked whole.

```yaml
user: squall                  # login on every host (a host may say its own)
key: ~/.ssh/squall_ed25519    # a private key file; or  agent: true  (ssh-agent)
port: 22
sudo: true                    # privileged steps via `sudo -n` (false: the user is root)
known_hosts: ~/.ssh/known_hosts   # or false: no host key check (throwaway test hosts only)
dir: /var/lib/squall          # where runs live on each host
hosts:
  - {node: n1, host: 10.0.0.11}
  - {node: n2, host: 10.0.0.12, address: 192.168.7.12}   # peers and clients use address
  - ...
```

``host`` is what SSH connects to; ``address`` (default: ``host``) is where the
other nodes and the clients on this machine reach the node, and the source
address a partition drops. Node ids are ``n1..nN``, each once, as everywhere
in the suite (grudges, bug nodes, reports). Relative paths are relative to
the inventory file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from squall.cluster.base import ClusterError

DEFAULT_DIR = "/var/lib/squall"
_TOP = {"user", "key", "agent", "port", "sudo", "known_hosts", "dir", "hosts"}
_HOST = {"node", "host", "address", "user", "key", "agent", "port", "sudo"}


class InventoryError(ClusterError):
    """The inventory is wrong; the message names the file, the entry and the fix."""


@dataclass(frozen=True, kw_only=True)
class Host:
    node: str
    host: str  # what SSH connects to
    address: str  # where peers and clients reach the node
    user: str
    port: int = 22
    key: str | None = None  # a private key file
    agent: bool = False  # use ssh-agent (SSH_AUTH_SOCK)
    sudo: bool = True


@dataclass(frozen=True, kw_only=True)
class Inventory:
    path: str
    hosts: tuple[Host, ...]
    known_hosts: str | None  # None: host keys are not checked
    dir: str = DEFAULT_DIR

    def host(self, node: str) -> Host:
        for h in self.hosts:
            if h.node == node:
                return h
        raise InventoryError(f"inventory {self.path} has no host for node {node!r}")

    @property
    def nodes(self) -> list[str]:
        return [h.node for h in sorted(self.hosts, key=lambda h: int(h.node[1:]))]


def load_inventory(path: str | Path) -> Inventory:
    """Reads and checks an inventory; raises InventoryError with one line saying what to fix."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InventoryError(f"inventory {p} does not exist; write one (README: 'Real hosts')")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InventoryError(f"inventory {p}: not valid YAML ({exc})".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise InventoryError(f"inventory {p}: expected a mapping with a hosts: list")
    _no_unknown(p, "the top level", data, _TOP)
    raw_hosts = data.get("hosts")
    if not isinstance(raw_hosts, list) or not raw_hosts:
        raise InventoryError(f"inventory {p}: hosts: must list at least one host")
    hosts = tuple(_host(p, i, raw, data) for i, raw in enumerate(raw_hosts, 1))
    _check_nodes(p, hosts)
    known = data.get("known_hosts", "~/.ssh/known_hosts")
    return Inventory(
        path=str(p),
        hosts=hosts,
        known_hosts=None if known in (False, None, "none") else _path(p, str(known)),
        dir=str(data.get("dir") or DEFAULT_DIR),
    )


def _no_unknown(p: Path, where: str, data: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(map(str, data)) - known)
    if unknown:
        raise InventoryError(
            f"inventory {p}: unknown key {unknown[0]!r} in {where}; known: {', '.join(sorted(known))}"
        )


def _host(p: Path, i: int, raw: Any, top: dict[str, Any]) -> Host:
    if not isinstance(raw, dict):
        raise InventoryError(
            f"inventory {p}: host #{i} must be a mapping like {{node: n1, host: …}}"
        )
    _no_unknown(p, f"host #{i}", raw, _HOST)
    for key in ("node", "host"):
        if not raw.get(key):
            raise InventoryError(f"inventory {p}: host #{i} needs {key}:")

    def pick(key: str, default: Any = None) -> Any:
        return raw.get(key, top.get(key, default))

    user = pick("user")
    if not user:
        raise InventoryError(f"inventory {p}: host #{i} has no user: (say it once at the top)")
    key, agent = pick("key"), bool(pick("agent", False))
    if not key and not agent:
        raise InventoryError(
            f"inventory {p}: host #{i} ({raw['host']}) has neither key: nor agent: true"
        )
    if key and not Path(_path(p, str(key))).is_file():
        raise InventoryError(f"inventory {p}: host #{i}: key file {_path(p, str(key))} is missing")
    try:
        port = int(pick("port", 22))
    except (TypeError, ValueError):
        raise InventoryError(f"inventory {p}: host #{i}: port must be a number") from None
    return Host(
        node=str(raw["node"]),
        host=str(raw["host"]),
        address=str(raw.get("address") or raw["host"]),
        user=str(user),
        port=port,
        key=_path(p, str(key)) if key else None,
        agent=agent,
        sudo=bool(pick("sudo", True)),
    )


def _check_nodes(p: Path, hosts: tuple[Host, ...]) -> None:
    want = {f"n{i}" for i in range(1, len(hosts) + 1)}
    seen: set[str] = set()
    for h in hosts:
        if h.node not in want or h.node in seen:
            raise InventoryError(
                f"inventory {p}: node ids must be n1..n{len(hosts)}, each once; "
                f"host {h.host} says {h.node!r}"
            )
        seen.add(h.node)
    # One node per host: the faults' control files and iptables chains are per host.
    places = [(h.host, h.port) for h in hosts]
    dup = next((pl for pl in places if places.count(pl) > 1), None)
    if dup:
        raise InventoryError(
            f"inventory {p}: {dup[0]}:{dup[1]} is listed twice; every node needs a host of its own"
        )


def _path(p: Path, value: str) -> str:
    q = Path(value).expanduser()
    return str(q if q.is_absolute() else (p.parent / q).resolve())
