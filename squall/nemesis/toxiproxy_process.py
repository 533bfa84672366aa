"""Starting, finding and stopping a Toxiproxy server process.

A real ``toxiproxy-server`` is used when one is on PATH and the upstreams are
plain addresses; otherwise (always for docker, whose upstreams are node
names only Squall's server can resolve) ``python -m nemesis.toxiproxy_server``
runs as a child process. A separate process rather than a thread: the proxy
pumps every byte between nodes, and in its own interpreter it competes for
no GIL with the runner's client workers.

Every server started here carries ``--label squall.nemesis=<run>`` on its
command line (ours) or a pidfile (Shopify's), so ``cleanup`` can find and
stop what a crashed runner left behind, by pid, and nothing else.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from squall import owner as ownership
from squall.util import free_port

LABEL = "squall.nemesis"
STATE_DIR = Path(os.environ.get("SQUALL_NEMESIS_STATE", "/tmp/squall-nemesis"))


class ToxiproxyError(RuntimeError):
    """The Toxiproxy server could not be started or reached; the message says why."""


@dataclass
class ToxiproxyServerProcess:
    host: str
    port: int
    kind: str  # "squall" or "shopify"
    process: subprocess.Popen[bytes]
    run: str

    @property
    def api(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        (STATE_DIR / f"{self.run}.pid").unlink(missing_ok=True)
        (STATE_DIR / f"{self.run}.log").unlink(missing_ok=True)


def start(
    run: str,
    host: str = "127.0.0.1",
    seed: int = 0,
    docker_network: str | None = None,
    prefer_shopify: bool = True,
    timeout: float = 10.0,
    owner: str | None = None,
) -> ToxiproxyServerProcess:
    """Starts a server listening on ``host`` and returns once its API answers.

    ``owner`` (default: this process's stamp, ``squall.owner``) is written on the
    server's command line: ``cleanup()`` without a run stops only servers whose
    owner is gone, judged by the lock it holds, never by a pid.
    """
    port = free_port(host)
    owner = ownership.stamp() if owner is None else owner
    binary = shutil.which("toxiproxy-server")
    if binary and prefer_shopify and docker_network is None:
        argv, kind = [binary, "-host", host, "-port", str(port)], "shopify"
    else:
        argv = [
            sys.executable,
            "-m",
            "squall.nemesis.toxiproxy_server",
            "--host",
            host,
            "--port",
            str(port),
            "--seed",
            str(seed),
            "--label",
            f"{LABEL}={run}",
            "--owner",
            str(owner),
        ]
        if docker_network:
            argv += ["--docker-network", docker_network]
        kind = "squall"
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    log = open(STATE_DIR / f"{run}.log", "wb")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )  # Ctrl-C in the terminal is the runner's
    log.close()
    (STATE_DIR / f"{run}.pid").write_text(f"{proc.pid} {owner}\n")
    server = ToxiproxyServerProcess(host, port, kind, proc, run)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (STATE_DIR / f"{run}.log").read_text(errors="replace")[-1000:]
            server.stop()  # removes the log: its tail goes into the error
            raise ToxiproxyError(f"the toxiproxy server exited with {proc.returncode}: {tail}")
        try:
            if requests.get(server.api + "/version", timeout=0.5).status_code == 200:
                return server
        except requests.RequestException:
            time.sleep(0.05)
    server.stop()
    raise ToxiproxyError(f"the toxiproxy server on {host}:{port} did not answer in {timeout:.0f}s")


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _owner_gone(owner: str) -> bool:
    """By the owner's lock (a token); a bare number is a pid, as servers started before
    owners held locks wrote it."""
    if owner.isdigit():
        return not _alive(int(owner))
    return ownership.state_of_stamp(owner) == "dead"


def leftovers(run: str | None = None) -> list[int]:
    """Pids of toxiproxy servers started by this module.

    For ``run``: every server of that run. Without: the servers whose owner
    process is gone (others belong to someone's live run and are left alone).
    """
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = _cmdline(int(entry.name))
        if "squall.nemesis.toxiproxy_server" not in argv and "nemesis.toxiproxy_server" not in argv:
            continue
        labels = [a for a in argv if a.startswith(f"{LABEL}=")]
        owner = argv[argv.index("--owner") + 1] if "--owner" in argv[:-1] else ""
        if labels and (labels[0] == f"{LABEL}={run}" if run is not None else _owner_gone(owner)):
            found.add(int(entry.name))
    if STATE_DIR.exists():
        for pidfile in STATE_DIR.glob("*.pid"):
            if run is not None and pidfile.stem != run:
                continue
            fields = pidfile.read_text().split() + [""]
            if not fields[0].isdigit():
                continue
            pid = int(fields[0])
            if run is None and not _owner_gone(fields[1]):
                continue
            if any("toxiproxy" in a for a in _cmdline(pid)):
                found.add(pid)
    return sorted(found)


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (dead, awaiting its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def cleanup(run: str | None = None) -> list[int]:
    """Stops leftover servers (SIGTERM, then SIGKILL) and returns their pids."""
    pids = leftovers(run)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + 5
    for pid in pids:
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for pidfile in STATE_DIR.glob("*.pid") if STATE_DIR.exists() else []:
        fields = pidfile.read_text().split() + [""]
        if not fields[0].isdigit() or not _alive(int(fields[0])):
            pidfile.unlink(missing_ok=True)
            pidfile.with_suffix(".log").unlink(missing_ok=True)
    return pids
