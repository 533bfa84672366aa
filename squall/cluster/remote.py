"""SSH to the inventory's hosts, for synchronous callers: asyncssh on one event-loop thread.

The backend's callers (the runner, nemeses, the sampler) are threads, and a
``Cluster`` method returns when its work is done; asyncssh is asyncio. So one
daemon thread runs one event loop holding one connection per host, and each
call submits a coroutine to it and waits for its answer. Many channels share
a host's connection (sshd allows 10 sessions per connection by default; a
semaphore keeps below that), so a nemesis exec never waits for a new login.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import threading
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import asyncssh

from squall.cluster.base import ClusterError
from squall.cluster.inventory import Host, Inventory

T = TypeVar("T")
CHANNELS_PER_HOST = 8  # below sshd's MaxSessions (10)
CONNECT_TIMEOUT = 15.0
TIMED_OUT = 124  # what timeout(1) exits with; the docker backend's exec says the same
AGENT = Path(__file__).with_name("hostagent.py")  # piped to the host's python3, never stored


def _bytes(data: bytes | str | None) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data or b"")


class Remote:
    """One SSH connection per host of an inventory, used from any thread."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="squall-ssh", daemon=True
        )
        self._thread.start()
        self._conns: dict[str, asyncssh.SSHClientConnection] = {}
        self._gates: dict[str, asyncio.Semaphore] = {}
        self._connecting: dict[str, asyncio.Task[asyncssh.SSHClientConnection]] = {}

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # -- connections ----------------------------------------------------------------
    async def _conn(self, node: str) -> asyncssh.SSHClientConnection:
        if node in self._conns:
            return self._conns[node]
        if node not in self._connecting:  # concurrent callers share one login
            self._connecting[node] = asyncio.ensure_future(self._login(self.inventory.host(node)))
        try:
            conn = await self._connecting[node]
        finally:
            self._connecting.pop(node, None)
        self._conns[node] = conn
        self._gates[node] = asyncio.Semaphore(CHANNELS_PER_HOST)
        return conn

    async def _login(self, h: Host) -> asyncssh.SSHClientConnection:
        options: dict[str, Any] = {
            "username": h.user,
            "port": h.port,
            "known_hosts": self.inventory.known_hosts,
            "connect_timeout": CONNECT_TIMEOUT,
            "keepalive_interval": 5,
        }
        if h.key:
            options["client_keys"] = [h.key]
        if not h.agent:
            options["agent_path"] = None
        try:
            return await asyncssh.connect(h.host, **options)
        except (OSError, asyncssh.Error) as exc:
            raise ClusterError(
                f"cannot reach {h.node} over SSH ({h.user}@{h.host}:{h.port}): "
                f"{type(exc).__name__}: {exc}; check the inventory's host, port, user, "
                "key and known_hosts"
            ) from None

    def connect(self, nodes: Sequence[str]) -> None:
        """Logs in to every host at once; raises ClusterError naming the first that failed."""

        async def all_() -> None:
            await asyncio.gather(*(self._conn(n) for n in nodes))

        self._call(all_())

    def control_address(self, node: str) -> str:
        """This machine's address as ``node`` sees it: the source of its SSH connection."""

        async def sockname() -> str:
            return str((await self._conn(node)).get_extra_info("sockname")[0])

        return self._call(sockname())

    # -- commands ------------------------------------------------------------------
    def prefix(self, node: str, root: bool) -> str:
        h = self.inventory.host(node)
        return "sudo -n " if root and h.sudo and h.user != "root" else ""

    def run(
        self,
        node: str,
        command: str | Sequence[str],
        *,
        root: bool = False,
        input: bytes | None = None,
        timeout: float = 30.0,
    ) -> tuple[int, bytes]:
        """Runs a shell command (or an argv, quoted) on the host: (exit code, stdout+stderr)."""
        text = command if isinstance(command, str) else shlex.join(command)
        line = self.prefix(node, root) + text

        async def go() -> tuple[int, bytes]:
            conn = await self._conn(node)
            async with self._gates[node]:
                try:
                    done = await conn.run(
                        line, input=input, encoding=None, timeout=timeout, check=False
                    )
                except asyncssh.TimeoutError as exc:
                    return TIMED_OUT, _bytes(exc.stdout) + _bytes(exc.stderr)
                except (OSError, asyncssh.Error) as exc:
                    raise ClusterError(
                        f"SSH to {node} failed running {text[:80]!r}: {exc}"
                    ) from None
            out = _bytes(done.stdout) + _bytes(done.stderr)
            return int(done.exit_status if done.exit_status is not None else 255), out

        return self._call(go(), timeout + 30)

    def agent(self, node: str, command: str, **args: Any) -> dict[str, Any]:
        """Runs one host agent command as root on ``node``; its JSON answer."""
        payload = json.dumps({"base": self.inventory.dir, **args})
        rc, out = self.run(
            node,
            ["python3", "-", command, payload],
            root=True,
            input=AGENT.read_bytes(),
            timeout=90,
        )
        text = out.decode(errors="replace").strip()
        try:
            answer = dict(json.loads(text.splitlines()[-1]))
        except (ValueError, IndexError):
            raise ClusterError(
                f"the host agent on {node} failed at {command} (exit {rc}): {text[-600:]}"
            ) from None
        if "error" in answer:
            raise ClusterError(f"{node} ({command}): {answer['error']}")
        return answer

    # -- files ---------------------------------------------------------------------
    def put(self, node: str, local: str | Path, remote: str) -> None:
        """Uploads a file or a directory tree (SFTP, as the login user)."""

        async def go() -> None:
            conn = await self._conn(node)
            async with self._gates[node], conn.start_sftp_client() as sftp:
                await sftp.makedirs(str(Path(remote).parent), exist_ok=True)
                await sftp.put(str(local), remote, recurse=Path(local).is_dir(), preserve=True)

        self._sftp(node, go())

    def get(self, node: str, remote: str, local: str | Path) -> bool:
        """Downloads a file (SFTP); False if it does not exist."""

        async def go() -> bool:
            conn = await self._conn(node)
            async with self._gates[node], conn.start_sftp_client() as sftp:
                if not await sftp.exists(remote):
                    return False
                await sftp.get(remote, str(local))
                return True

        return self._sftp(node, go())

    def _sftp(self, node: str, coro: Coroutine[Any, Any, T]) -> T:
        try:
            return self._call(coro, 600)
        except (OSError, asyncssh.Error) as exc:
            raise ClusterError(f"SFTP with {node} failed: {exc}") from None

    def close(self) -> None:
        async def shut() -> None:
            for conn in self._conns.values():
                conn.close()
            await asyncio.gather(*(c.wait_closed() for c in self._conns.values()))
            self._conns.clear()

        if self._loop.is_running():
            try:
                self._call(shut(), 10)
            except Exception:  # noqa: BLE001 - closing a dead connection is no error worth raising
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
