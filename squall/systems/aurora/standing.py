"""``squall cluster up|status|down``: a cluster left running for a person.

It is the repository's ``docker-compose.yml`` (5 nodes on 127.0.0.1:18001…
18005), started under the compose project ``squall``. Compose, not the run
backend, on purpose: a standing cluster has no owning runner, and the
leftover reaper removes only what a *dead runner* left — compose containers
carry no ``squall.run`` label, so they stay until ``squall cluster down``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import requests
from rich.console import Console
from rich.table import Table

PROJECT = "squall"
PORTS = {f"n{i}": 18000 + i for i in range(1, 6)}


class StandingError(RuntimeError):
    pass


def _root() -> Path:
    here = Path(__file__).resolve().parents[3]
    if not (here / "docker-compose.yml").exists():
        raise StandingError(
            f"docker-compose.yml not found beside {here}; run from a source checkout"
        )
    return here


def _compose(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker-compose")
    cmd = [exe] if exe else ["docker", "compose"]
    env = dict(os.environ)
    return subprocess.run(
        [*cmd, "-p", PROJECT, *args], cwd=_root(), env=env, capture_output=True, text=True
    )


def ensure_secret() -> Path:
    """The standing cluster's secret file (made once, 0600, never committed)."""
    import secrets

    path = _root() / "docker" / "compose" / ".secret"
    if not path.exists():
        path.write_text(secrets.token_hex(32) + "\n")
        path.chmod(0o600)
    return path


def cluster_up(
    nodes: int = 5,
    backend: str = "docker",
    bugs: list[str] | None = None,
    console: Console | None = None,
) -> None:
    console = console or Console(stderr=True)
    if backend != "docker" or nodes != 5:
        raise StandingError(
            "the standing cluster is the 5-node docker-compose cluster; for other "
            "shapes use `squall run --backend local` (or edit docker-compose.yml)"
        )
    from squall.cluster.image import tag_latest  # builds the image if needed
    from squall.systems.aurora.system import AuroraSystem

    env_bugs = ",".join(bugs or [])
    os.environ["SQUALL_BUGS"] = env_bugs
    tag_latest(AuroraSystem().image(), lambda m: console.print(f"image: {m}"))
    ensure_secret()
    proc = _compose("up", "-d")
    if proc.returncode != 0:
        raise StandingError(f"docker-compose up failed:\n{proc.stderr[-1500:]}")
    for node, port in PORTS.items():
        console.print(f"{node}  http://127.0.0.1:{port}")
    console.print("squall cluster status  |  squall cluster down")


def cluster_status(console: Console | None = None) -> None:
    console = console or Console()
    table = Table("node", "role", "term", "leader", "commit", "applied", "snapshot")
    for node, port in PORTS.items():
        try:
            s = requests.get(f"http://127.0.0.1:{port}/status", timeout=1).json()
        except (requests.RequestException, ValueError):
            table.add_row(node, "[red]down[/]", "", "", "", "", "")
            continue
        snap = s.get("last_snapshot") or {}
        table.add_row(
            node,
            s.get("role", "?"),
            str(s.get("term")),
            str(s.get("leader")),
            str(s.get("commit_index")),
            str(s.get("applied_index")),
            str(snap.get("index", "-")),
        )
    console.print(table)


def cluster_down(console: Console | None = None) -> None:
    console = console or Console(stderr=True)
    proc = _compose("down", "-v")
    if proc.returncode != 0:
        raise StandingError(f"docker-compose down failed:\n{proc.stderr[-1500:]}")
    console.print("standing cluster removed")
