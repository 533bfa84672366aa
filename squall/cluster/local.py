"""The local backend: every node a process on 127.0.0.1, for fast tests and benches.

Faults it can do with signals only: kill (SIGKILL), pause/resume
(SIGSTOP/SIGCONT), and link faults when a fault routes node-to-node traffic
through proxies (``NodeNeeds.peer_routes``). It cannot drop packets: a
partition here blackholes those proxies instead. Each node runs in its own process group, and every process this
class started is killed and reaped on ``down()``, at interpreter exit too, so
a failing test never leaves a node behind.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from squall.cluster.base import Cluster, ClusterError, ClusterSpec
from squall.protocols import System
from squall.util import free_ports, write_private

_LIVE: weakref.WeakSet[LocalCluster] = weakref.WeakSet()


@atexit.register
def _reap_all() -> None:
    for c in list(_LIVE):
        with contextlib.suppress(Exception):
            c.down()


class LocalCluster(Cluster):
    supports = frozenset({"kill", "pause", "proxy-peers"})
    kind = "local"

    def __init__(self, spec: ClusterSpec, system: System) -> None:
        super().__init__(spec, system)
        self._own_root = spec.data_root is None
        self.root = (
            Path(spec.data_root)
            if spec.data_root
            else Path(tempfile.mkdtemp(prefix=f"squall-{spec.name}-"))
        )
        # Every (node, port) gets a free port now, before anything starts: a link
        # fault points its proxies at the nodes before they exist.
        wanted = [(n, p.name) for n in self.nodes for p in system.ports]
        self.port_of = dict(zip(wanted, free_ports(len(wanted)), strict=True))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}
        self._paused: set[str] = set()
        self._secrets: set[Path] = set()  # NodeSpec.secrets written: removed at down()
        _LIVE.add(self)

    # -- layout ------------------------------------------------------------
    def node_dir(self, node: str) -> Path:
        return self.root / node

    def data_dir(self, node: str) -> str:
        return str(self.node_dir(node) / "data")

    def log_path(self, node: str) -> Path:
        return self.node_dir(node) / "node.log"

    def address(self, node: str, port: str | None = None) -> str:
        return f"127.0.0.1:{self.port_of[(node, port or self.client_port)]}"

    def peer_upstream(self, node: str) -> str:
        return self.address(node, self.system.peer_port)

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
        Path(self.data_dir(node)).mkdir(parents=True, exist_ok=True)
        names = [p.name for p in self.system.ports]
        spec = self.node_spec(
            node,
            listen={p: self.address(node, p) for p in names},
            peers={p: {n: self.address(n, p) for n in self.nodes} for p in names},
            data_dir=self.data_dir(node),
            config_dir=str(d),
            runtime="process",
        )
        for path, text in spec.files.items():
            Path(path).write_text(text)
        for path, text in spec.secrets.items():
            write_private(Path(path), text)
            self._secrets.add(Path(path))
        log = open(self.log_path(node), "ab")  # noqa: SIM115 (held for the process lifetime)
        env = {**os.environ, **spec.env}
        self.procs[node] = subprocess.Popen(
            [*self.spec.wrapper(self.data_dir(node)), *spec.argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
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
        for path in self._secrets:
            path.unlink(missing_ok=True)
        self._secrets.clear()
        if self._own_root and self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)
        _LIVE.discard(self)

    def exec(self, node: str, argv: Sequence[str], timeout: float = 30) -> tuple[int, str]:
        """Runs a command on the host (the node's "machine"), in the node's directory."""
        try:
            r = subprocess.run(
                list(argv), cwd=self.node_dir(node), capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as e:
            return 124, f"timed out after {timeout}s: {e}"
        return r.returncode, r.stdout + r.stderr

    def collect(self, dest: Path, data: bool = False) -> None:
        for n in self.nodes:
            out = Path(dest) / n
            out.mkdir(parents=True, exist_ok=True)
            if self.log_path(n).exists():
                shutil.copy2(self.log_path(n), out / "node.log")
            if data and Path(self.data_dir(n)).exists():
                self._copy_frozen(n, out / "data")

    def _copy_frozen(self, node: str, dest: Path) -> None:
        """Copies a node's data with the node stopped (SIGSTOP), so the copy is what a crash would leave."""
        freeze = self.is_running(node) and node not in self._paused
        if freeze:
            self._signal(node, signal.SIGSTOP)
        try:
            shutil.copytree(Path(self.data_dir(node)), dest, dirs_exist_ok=True)
        finally:
            if freeze:
                self._signal(node, signal.SIGCONT)

    def logs(self, node: str, since: float | None = None) -> str:
        """The node's log file (``since`` is ignored: local logs carry their own times)."""
        p = self.log_path(node)
        return p.read_text(errors="replace") if p.exists() else ""

    def read_file(self, node: str, path: str) -> bytes | None:
        p = Path(path)
        return p.read_bytes() if p.is_file() else None

    def write_file(self, node: str, path: str, data: bytes) -> None:
        Path(path).write_bytes(data)

    def _tails(self, lines: int = 15) -> str:
        out = []
        for n in self.nodes:
            p = self.log_path(n)
            text = (
                p.read_text(errors="replace").splitlines()[-lines:] if p.exists() else ["(no log)"]
            )
            out.append(
                f"--- {n} ({'running' if self.is_running(n) else 'down'}) ---\n" + "\n".join(text)
            )
        return "\n".join(out)
