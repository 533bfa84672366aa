"""``python -m squall.systems.aurora.store.node --config FILE.yaml`` (``aurora_store.node`` in a container): one store node, logging to stdout."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

from aiohttp import web

from .api import Api
from .config import Config, ConfigError, parse_args
from .fsutil import DamagedData
from .limits import ConnectionGuard
from .peerauth import read_secret
from .store import Store

log = logging.getLogger("squall.node")


async def serve(cfg: Config, secret: bytes | None = None) -> None:
    store = Store(cfg, secret)
    guard = ConnectionGuard(
        cfg.idle_timeout_ms / 1000, min(cfg.header_timeout_ms, cfg.idle_timeout_ms) / 1000
    )
    api = Api(store, guard)
    apps = [(api.app(), cfg.host_port)]
    if cfg.peer_host_port is not None:
        apps.append((api.peer_app(), cfg.peer_host_port))
    loop = asyncio.get_running_loop()
    runners, servers = [], []
    for app, (host, port) in apps:
        # lingering_time=0: a request refused before its body was read (too large, too
        # slow) closes the connection instead of draining the rest of the body.
        runner = web.AppRunner(app, access_log=None, lingering_time=0)
        await runner.setup()
        runners.append(runner)
        assert runner.server is not None  # set up just above
        # Our own listening socket rather than a TCPSite: every connection's protocol
        # goes through the guard, which closes idle and slow ones (limits.py).
        servers.append(
            await loop.create_server(guard.protocol(runner.server), host, port, reuse_address=True)
        )
    sweeper = asyncio.ensure_future(guard.run())
    await store.start()
    log.info(
        "node %s serving on %s (peers on %s; applied %d, bugs %s)",
        cfg.id,
        cfg.listen,
        cfg.peer_listen or cfg.listen,
        store.applied_index,
        ",".join(sorted(cfg.bugs)) or "none",
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(store.failed.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for w in waits:
        w.cancel()
    log.info("node %s stopping", cfg.id)
    sweeper.cancel()
    for srv in servers:
        srv.close()
    await store.stop()
    for runner in runners:
        await runner.cleanup()
    if store.failure:
        raise NodeFailed(store.failure)


SWITCH_INTERVAL = 0.0005  # seconds


def use_uvloop() -> None:
    """uvloop's event loop when it is importable (the node image has python3-uvloop), else asyncio's.

    The loop carries every write's HTTP, Raft RPCs and thread hand-offs; uvloop
    does the same work in a fraction of the CPU. ``SQUALL_UVLOOP=0`` keeps
    asyncio's loop (to compare the two).
    """
    if os.environ.get("SQUALL_UVLOOP", "1") == "0":
        return
    try:
        import uvloop
    except ImportError:
        return
    uvloop.install()
    log.info("event loop: uvloop %s", uvloop.__version__)


class NodeFailed(Exception):
    """The node stopped itself rather than serve a state that may have diverged."""


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        stream=sys.stdout,
        level=logging.INFO,
        format="%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    with contextlib.suppress(AttributeError):
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    try:
        cfg = parse_args(argv)
        secret = read_secret(cfg.secret_file) if cfg.secret_file else None
    except (ConfigError, ValueError) as e:
        log.error("bad configuration: %s", e)
        return 2
    # Threads that mostly wait in C (SQLite steps, fsync, sockets) re-take the GIL
    # after each call; a thread running Python keeps it up to the switch interval
    # (5 ms by default) first, and the writer's ~10 calls per entry each paid that
    # wait. A shorter interval hands the GIL over sooner.
    sys.setswitchinterval(SWITCH_INTERVAL)
    use_uvloop()
    try:
        asyncio.run(serve(cfg, secret))
    except DamagedData as e:
        # Serving from damaged state would hand out wrong answers: refuse.
        log.error("refusing to start: %s", e)
        return 3
    except NodeFailed as e:
        log.error("stopped: %s", e)
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main())
