"""The local backend: every node a process on 127.0.0.1, for fast tests and benches.

Faults it can do with signals only: kill (SIGKILL), pause/resume
(SIGSTOP/SIGCONT), and link faults when ``spec.extra["peer_urls"]`` routes
node-to-node traffic through a proxy. It cannot drop packets, so no
partitions. Each node runs in its own process group, and every process this
class started is killed and reaped on ``down()``, at interpreter exit too, so
a failing test never leaves a node behind.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import yaml

from squall.cluster.base import Cluster, ClusterError, ClusterSpec

_LIVE: weakref.WeakSet[LocalCluster] = weakref.WeakSet()


@atexit.register
def _reap_all() -> None:
    for c in list(_LIVE):
        with contextlib.suppress(Exception):
            c.down()


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class LocalCluster(Cluster):
    supports = frozenset({"kill", "pause", "link"})

    def __init__(self, spec: ClusterSpec) -> None:
        super().__init__(spec)
        self._own_root = spec.data_root is None
        self.root = Path(spec.data_root) if spec.data_root else Path(tempfile.mkdtemp(prefix=f"squall-{spec.name}-"))
        # spec.extra["ports"] fixes the ports up front (the link nemesis must point
        # its proxies at the nodes before they exist); otherwise free ones are picked.
        self.ports = dict(spec.extra.get("ports") or
                          zip(self.nodes, free_ports(len(self.nodes)), strict=True))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}
        self._paused: set[str] = set()
        _LIVE.add(self)

    # -- layout ------------------------------------------------------------
    def node_dir(self, node: str) -> Path:
        return self.root / node

    def data_dir(self, node: str) -> Path:
        return self.node_dir(node) / "data"

    def log_path(self, node: str) -> Path:
        return self.node_dir(node) / "node.log"

    def client_url(self, node: str) -> str:
        return f"http://127.0.0.1:{self.ports[node]}"

    def peer_urls(self, node: str) -> dict[str, str]:
        """How ``node`` reaches every node: direct, unless ``spec.extra["peer_urls"]`` reroutes it."""
        urls = {n: self.client_url(n) for n in self.nodes}
        urls.update((self.spec.extra.get("peer_urls") or {}).get(node, {}))
        return urls

    def config(self, node: str) -> dict[str, Any]:
        s = self.spec
        return {"id": node, "data_dir": str(self.data_dir(node)), "listen": f"127.0.0.1:{self.ports[node]}",
                "peers": self.peer_urls(node), "election_timeout_ms": list(s.election_timeout_ms),
                "heartbeat_ms": s.heartbeat_ms, "snapshot_every": s.snapshot_every,
                "snapshot_codec": s.snapshot_codec, "digest_every": s.digest_every, "bugs": s.bugs_for(node),
                **s.extra.get("node_config", {})}

    # -- lifecycle -----------------------------------------------------------
    def up(self) -> None:
        for n in self.nodes:
            self.start(n)
        try:
            self.wait_healthy(30)
        except ClusterError as e:
            raise ClusterError(f"{e}\n{self._tails()}") from None

    def start(self, node: str) -> None:
        if self.is_running(node):
            return
        d = self.node_dir(node)
        self.data_dir(node).mkdir(parents=True, exist_ok=True)
        cfg_path = d / "node.yaml"
        cfg_path.write_text(yaml.safe_dump(self.config(node)))
        log = open(self.log_path(node), "ab")  # noqa: SIM115 (held for the process lifetime)
        env = dict(os.environ)
        env.pop("SQUALL_BUGS", None)   # bugs come from the spec, per node
        env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")])
        self.procs[node] = subprocess.Popen(
            [sys.executable, "-m", "squall.systems.aurora.store.node", "--config", str(cfg_path)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self._logs[node] = log

    def _signal(self, node: str, sig: int) -> None:
        p = self.procs.get(node)
        if p is None or p.poll() is not None:
            raise ClusterError(f"node {node} is not running; start it first")
        os.killpg(p.pid, sig)

    def kill(self, node: str) -> None:
        p = self.procs.get(node)
        if p is None or p.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        self._paused.discard(node)
        self._logs.pop(node).close()

    def pause(self, node: str) -> None:
        self._signal(node, signal.SIGSTOP)
        self._paused.add(node)

    def resume(self, node: str) -> None:
        self._signal(node, signal.SIGCONT)
        self._paused.discard(node)

    def is_running(self, node: str) -> bool:
        p = self.procs.get(node)
        return p is not None and p.poll() is None

    def down(self) -> None:
        for n in list(self.procs):
            self.kill(n)
        self.procs.clear()
        if self._own_root and self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)
        _LIVE.discard(self)

    def exec(self, node: str, argv: Sequence[str], timeout: float = 30) -> tuple[int, str]:
        """Runs a command on the host (the node's "machine"), in the node's directory."""
        try:
            r = subprocess.run(list(argv), cwd=self.node_dir(node), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            return 124, f"timed out after {timeout}s: {e}"
        return r.returncode, r.stdout + r.stderr

    def collect(self, dest: Path, data: bool = False) -> None:
        for n in self.nodes:
            out = Path(dest) / n
            out.mkdir(parents=True, exist_ok=True)
            if self.log_path(n).exists():
                shutil.copy2(self.log_path(n), out / "node.log")
            if data and self.data_dir(n).exists():
                self._copy_frozen(n, out / "data")

    def _copy_frozen(self, node: str, dest: Path) -> None:
        """Copies a node's data with the node stopped (SIGSTOP), so the copy is what a crash would leave."""
        freeze = self.is_running(node) and node not in self._paused
        if freeze:
            self._signal(node, signal.SIGSTOP)
        try:
            shutil.copytree(self.data_dir(node), dest, dirs_exist_ok=True)
        finally:
            if freeze:
                self._signal(node, signal.SIGCONT)

    def _tails(self, lines: int = 15) -> str:
        out = []
        for n in self.nodes:
            p = self.log_path(n)
            text = p.read_text(errors="replace").splitlines()[-lines:] if p.exists() else ["(no log)"]
            out.append(f"--- {n} ({'running' if self.is_running(n) else 'down'}) ---\n" + "\n".join(text))
        return "\n".join(out)
