"""The proxying half of Squall's Toxiproxy: listeners and byte pumps with toxics.

A ``Proxy`` listens on its address and, for each accepted connection, opens
one to its upstream and pumps bytes both ways (``Link``), applying that
direction's toxics (``nemesis.toxics``) as they stand at each chunk, so a
toxic added or removed while a connection is open takes effect on it, as in
Toxiproxy. The HTTP API that creates and changes proxies is
``nemesis.toxiproxy_server``. Standard library only.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
from collections.abc import Callable
from typing import Any, Protocol

from squall.nemesis.toxics import Toxic, slices


class Host(Protocol):
    """What a proxy needs from the server that owns it."""

    rng: random.Random
    resolve: Callable[[str], str]


TICK = 0.01  # how often a held direction or a connection's watchdog looks again


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def split_addr(addr: str) -> tuple[str, int]:
    host, sep, port = str(addr).rpartition(":")
    if not sep or not port.isdigit():
        raise ApiError(400, f"address {addr!r} must be HOST:PORT")
    return host or "0.0.0.0", int(port)


class Link:
    """One client connection and its upstream, pumped in both directions."""

    def __init__(
        self, proxy: Proxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.proxy = proxy
        self.client = (reader, writer)
        self.upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.rolls: dict[str, bool] = {}
        self.closed = asyncio.Event()

    def active(self, stream: str | None = None) -> list[Toxic]:
        out = []
        for t in list(self.proxy.toxics.values()):
            if stream is not None and t.stream != stream:
                continue
            if t.name not in self.rolls:
                self.rolls[t.name] = self.proxy.server.rng.random() < t.toxicity
            if self.rolls[t.name]:
                out.append(t)
        return out

    async def run(self) -> None:
        try:
            host, port = split_addr(self.proxy.upstream)
            host = await asyncio.to_thread(self.proxy.server.resolve, host)
            self.upstream = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
        except (TimeoutError, OSError, ApiError):
            self.close()
            return
        up_r, up_w = self.upstream
        cl_r, cl_w = self.client
        pumps = [
            asyncio.create_task(self._pump(cl_r, up_w, "upstream")),
            asyncio.create_task(self._pump(up_r, cl_w, "downstream")),
        ]
        watchdog = asyncio.create_task(self._watch())
        await asyncio.gather(*pumps, return_exceptions=True)
        watchdog.cancel()
        self.close()

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, stream: str
    ) -> None:
        # Reading and delivering are separate tasks so a latency toxic delays
        # each chunk from its arrival (pipelined), as Toxiproxy does, instead
        # of adding the latency once per read.
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(maxsize=256)

        async def read() -> None:
            try:
                while data := await src.read(65536):
                    await queue.put((time.monotonic(), data))
            except OSError:
                pass
            await queue.put(None)

        reader = asyncio.create_task(read())
        try:
            await self._deliver(queue, dst, stream)
        except OSError:
            pass
        finally:
            reader.cancel()
            self.close()

    async def _deliver(
        self,
        queue: asyncio.Queue[tuple[float, bytes] | None],
        dst: asyncio.StreamWriter,
        stream: str,
    ) -> None:
        last, sent = 0.0, 0
        rng = self.proxy.server.rng
        while (item := await queue.get()) is not None:
            stamp, data = item
            while any(t.type == "timeout" for t in self.active(stream)):
                await asyncio.sleep(TICK)  # held, not dropped: see nemesis.toxics
                if self.closed.is_set():
                    return
            toxics = self.active(stream)
            for t in toxics:
                if t.type == "latency":
                    delay = (
                        t.attr("latency") + rng.uniform(-t.attr("jitter"), t.attr("jitter"))
                    ) / 1000
                    last = max(stamp + max(0.0, delay), last)
                    await asyncio.sleep(max(0.0, last - time.monotonic()))
            limit = next((int(t.attr("bytes")) for t in toxics if t.type == "limit_data"), None)
            if limit is not None and sent + len(data) >= limit:
                await self._write(dst, data[: max(0, limit - sent)], toxics)
                return
            await self._write(dst, data, toxics)
            sent += len(data)

    async def _write(self, dst: asyncio.StreamWriter, data: bytes, toxics: list[Toxic]) -> None:
        slicer = next((t for t in toxics if t.type == "slicer"), None)
        pieces = (
            [data]
            if slicer is None
            else slices(
                data,
                int(slicer.attr("average_size")),
                int(slicer.attr("size_variation")),
                self.proxy.server.rng,
            )
        )
        rate = next((t.attr("rate") for t in toxics if t.type == "bandwidth"), None)
        for i, piece in enumerate(pieces):
            if i and slicer is not None:
                await asyncio.sleep(slicer.attr("delay") / 1e6)
            while rate == 0:  # a zero rate holds the data until the toxic changes
                await asyncio.sleep(TICK)
                rate = next((t.attr("rate") for t in self.active() if t.type == "bandwidth"), None)
            dst.write(piece)
            await dst.drain()
            if rate:
                await asyncio.sleep(len(piece) / (rate * 1000))

    async def _watch(self) -> None:
        """Closes the link when its proxy goes away or a timed toxic fires."""
        seen: dict[str, float] = {}
        while not self.closed.is_set():
            if not self.proxy.enabled or self not in self.proxy.links:
                self.close()
                return
            now = time.monotonic()
            timed = {t.name: t for t in self.active() if t.type in ("timeout", "reset_peer")}
            for name in list(seen):
                if name not in timed:
                    del seen[name]
            for name, t in timed.items():
                since = seen.setdefault(name, now)
                if (t.type == "reset_peer" or t.attr("timeout") > 0) and now - since >= t.attr(
                    "timeout"
                ) / 1000:
                    self.close(reset=t.type == "reset_peer")
                    return
            await asyncio.sleep(TICK)

    def close(self, reset: bool = False) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self.proxy.links.discard(self)
        _, cl_w = self.client
        if reset:
            sock = cl_w.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            cl_w.transport.abort()
        else:
            cl_w.close()
        if self.upstream is not None:
            self.upstream[1].close()


class Proxy:
    def __init__(self, server: Host, name: str, listen: str, upstream: str) -> None:
        self.server = server
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics: dict[str, Toxic] = {}
        self.links: set[Link] = set()
        self._listener: asyncio.Server | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [t.to_json() for t in self.toxics.values()],
        }

    async def enable(self) -> None:
        if self.enabled:
            return
        host, port = split_addr(self.listen)
        try:
            self._listener = await asyncio.start_server(self._accept, host, port)
        except OSError as exc:
            raise ApiError(
                500, f"proxy {self.name}: cannot listen on {self.listen}: {exc}"
            ) from None
        if port == 0:  # keep the chosen port, so a disable/enable keeps the address
            self.listen = f"{host}:{self._listener.sockets[0].getsockname()[1]}"
        self.enabled = True

    async def disable(self) -> None:
        # Toxiproxy semantics: stop listening and cut every live connection.
        self.enabled = False
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for link in list(self.links):
            link.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.enabled:
            writer.close()
            return
        link = Link(self, reader, writer)
        self.links.add(link)
        await link.run()
