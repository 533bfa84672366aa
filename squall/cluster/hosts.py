"""Real hosts, before and after runs: ``squall hosts prepare | clean | status INVENTORY``.

``prepare`` is the one step that installs anything, and it says so: the
Debian packages a system's node image would hold (``System.image().packages``
plus what the faults need, ``squall.cluster.image.packages``) are installed
with apt-get, as root, the services those packages start by themselves
(``ImageRecipe.services``: Debian's etcd) are stopped and disabled, and the
runs directory is made. A run never installs anything; it refuses a host that
lacks a package, or runs one of those services, naming this command.

``clean`` undoes every run a host still holds (``squall.cluster.hostagent``'s
manifest: processes, mounts, iptables chains, links, scratch files, the run
directory), except a run whose runner still lives on this machine (a live
test; ``force`` takes it too). A run started from another machine may still
be running: it is left unless forced.
"""

from __future__ import annotations

import os
import shlex
import socket
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from squall.cluster.base import ClusterError
from squall.cluster.image import packages
from squall.cluster.inventory import Inventory
from squall.cluster.procs import alive_since
from squall.cluster.remote import Remote
from squall.protocols import System

T = TypeVar("T")
Say = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class HostCheck:
    node: str
    uid: int
    gid: int
    root: bool  # privileged commands (sudo -n, or a root login) run as root
    python: str  # "3.11", or "" without python3
    missing: tuple[str, ...]  # packages not installed
    fuse: bool  # /dev/fuse exists (the disk faults need it)
    active: tuple[
        str, ...
    ] = ()  # the system's packaged services running now (ImageRecipe.services)


def required_packages(system: System) -> list[str]:
    return packages(system.image())


def required_services(system: System) -> tuple[str, ...]:
    return system.image().services


# A service of a package, as the host's init system sees it: systemd where it runs,
# else the sysv script (what Debian's packages ship for hosts without systemd).
_SYSTEMD = "[ -d /run/systemd/system ]"


def _service_running(service: str, sudo: str) -> str:
    s = shlex.quote(service)
    return (
        f"if {_SYSTEMD}; then systemctl is-active --quiet {s}; "
        f"else {sudo}service {s} status >/dev/null 2>&1; fi && echo active={s}"
    )


def _service_off(service: str) -> str:
    s = shlex.quote(service)
    return (
        f"if {_SYSTEMD}; then systemctl disable --now {s}; "
        f"else service {s} stop >/dev/null; update-rc.d {s} disable >/dev/null 2>&1; true; fi"
    )


def check_host(
    remote: Remote, node: str, pkgs: list[str], services: tuple[str, ...] = ()
) -> HostCheck:
    """One round trip: who we are, whether root works, python3, missing packages, /dev/fuse,
    and which of ``services`` (the system's packaged ones) are running."""
    sudo = remote.prefix(node, root=True)
    lines = [
        'echo "uid=$(id -u) gid=$(id -g)"',
        f'echo "root=$({sudo}id -u 2>/dev/null)"',
        'echo "python=$(python3 -c \'import sys; print("%d.%d" % sys.version_info[:2])\' 2>/dev/null)"',
        f"for p in {shlex.join(pkgs)}; do dpkg-query -W -f='${{db:Status-Abbrev}}' \"$p\" "
        '2>/dev/null | grep -q "^ii" || echo "missing=$p"; done',
        "test -c /dev/fuse && echo fuse=1 || echo fuse=0",
        *(f"{{ {_service_running(s, sudo)}; }} || true" for s in services),
    ]
    rc, out = remote.run(node, "\n".join(lines), timeout=60)
    said: dict[str, list[str]] = {}
    for line in out.decode(errors="replace").splitlines():
        for word in line.split():
            key, sep, value = word.partition("=")
            if sep:
                said.setdefault(key, []).append(value)
    try:
        return HostCheck(
            node=node,
            uid=int(said["uid"][0]),
            gid=int(said["gid"][0]),
            root=said.get("root", [""])[0] == "0",
            python=said.get("python", [""])[0],
            missing=tuple(said.get("missing", [])),
            fuse=said.get("fuse", ["0"])[0] == "1",
            active=tuple(said.get("active", [])),
        )
    except (KeyError, ValueError, IndexError):
        raise ClusterError(
            f"{node}: the host check printed nothing usable (exit {rc}): {out[-300:]!r}"
        ) from None


def refusal(check: HostCheck, inventory: Inventory, system: str = "") -> str | None:
    """Why a run cannot use this host (one line naming the fix), or None."""
    h = inventory.host(check.node)
    if not check.root:
        how = "sudo -n failed" if h.sudo and h.user != "root" else "sudo: false and not root"
        return (
            f"{check.node} ({h.host}): the ssh backend needs root there ({how}); give "
            f"{h.user} passwordless sudo, or log in as root"
        )
    if check.missing:
        return (
            f"{check.node} ({h.host}) lacks {', '.join(check.missing)}; run "
            f"squall hosts prepare {inventory.path} (it installs them with apt-get, as root)"
        )
    if check.active:
        return (
            f"{check.node} ({h.host}) runs the packaged service {', '.join(check.active)}, "
            f"which holds the ports the run's nodes need; run squall hosts prepare "
            f"{inventory.path}{f' --system {system}' if system else ''} (it stops and disables it)"
        )
    return None


def on_all(nodes: list[str], work: Callable[[str], T]) -> dict[str, T]:
    """``work(node)`` for every node at once; the first error is raised after all finished."""
    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        futures = {n: pool.submit(work, n) for n in nodes}
    return {n: f.result() for n, f in futures.items()}


def prepare(inventory: Inventory, system: System, say: Say) -> dict[str, list[str]]:
    """Installs what runs need on every host (as root, once); returns what was done per host."""
    pkgs, services = required_packages(system), required_services(system)
    remote = Remote(inventory)
    try:
        remote.connect(inventory.nodes)

        def ready(node: str) -> list[str]:
            done = []
            check = check_host(remote, node, pkgs, services)
            if not check.root:
                raise ClusterError(str(refusal(check, inventory)))
            if check.missing:
                say(f"{node}: apt-get install {' '.join(check.missing)}")
                rc, out = remote.run(
                    node,
                    "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && "
                    "apt-get install -y -qq --no-install-recommends " + shlex.join(check.missing),
                    root=True,
                    timeout=1800,
                )
                if rc != 0:
                    raise ClusterError(
                        f"{node}: apt-get install failed (exit {rc}): "
                        f"{out.decode(errors='replace')[-500:]}"
                    )
                done.append("installed " + " ".join(check.missing))
            for service in services:  # what the install just started, and any left running
                off = ["sh", "-c", _service_off(service)]  # one shell under sudo
                rc, out = remote.run(node, off, root=True, timeout=120)
                if rc != 0:
                    raise ClusterError(
                        f"{node}: could not stop and disable service {service} (exit {rc}): "
                        f"{out.decode(errors='replace')[-300:]}"
                    )
            if services:
                done.append("stopped and disabled service " + " ".join(services))
            remote.run(node, ["install", "-d", "-m", "0755", f"{inventory.dir}/runs"], root=True)
            again = check_host(remote, node, pkgs, services)
            if again.missing:
                raise ClusterError(f"{node}: still lacks {', '.join(again.missing)} after apt-get")
            if again.active:
                raise ClusterError(f"{node}: service {', '.join(again.active)} still runs")
            if not again.fuse:
                done.append("no /dev/fuse: disk-stall and power-cut cannot run here")
            return done or ["nothing to install"]

        return on_all(inventory.nodes, ready)
    finally:
        remote.close()


def owner(node: str) -> dict[str, Any]:
    """Who owns a run a backend starts now: this machine and process (written to the manifest)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "created": time.time(), "node": node}


def owner_alive(who: Mapping[str, Any]) -> bool | None:
    """True/False for a runner of this machine; None when it ran elsewhere (unknowable here)."""
    if who.get("host") != socket.gethostname():
        return None
    try:
        return alive_since(int(who["pid"]), float(who["created"]))
    except (KeyError, TypeError, ValueError):
        return False


def clean(inventory: Inventory, say: Say, force: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Undoes every run the hosts hold whose runner is gone (all of them, with ``force``)."""
    remote = Remote(inventory)
    try:
        remote.connect(inventory.nodes)

        def sweep(node: str) -> list[dict[str, Any]]:
            done = []
            for run, who in remote.agent(node, "runs")["runs"].items():
                alive = owner_alive(who)
                if alive is not False and not force:
                    whose = f"pid {who.get('pid')} on {who.get('host')}"
                    say(
                        f"{node}: kept run {run} ({whose} "
                        + ("still runs" if alive else "may still run")
                        + "); --force removes it"
                    )
                    continue
                done.append(remote.agent(node, "clean", run=run))
                say(f"{node}: removed run {run}")
            return done

        return on_all(inventory.nodes, sweep)
    finally:
        remote.close()


def leftovers(inventory: Inventory) -> dict[str, dict[str, Any]]:
    """Per host: run directories, marked processes, mounts and iptables rules of Squall's left."""
    remote = Remote(inventory)
    try:
        remote.connect(inventory.nodes)
        return on_all(inventory.nodes, lambda n: remote.agent(n, "leftovers"))
    finally:
        remote.close()
