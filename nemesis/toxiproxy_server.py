"""Squall's own Toxiproxy: the Toxiproxy HTTP API over a real asyncio TCP proxy.

Shopify's ``toxiproxy-server`` cannot be downloaded where Squall runs, and
this kernel has no netem, so this is the only way to slow or cut a link.
It speaks the same API (``/proxies``, ``/proxies/{name}``,
``/proxies/{name}/toxics[/{toxic}]``, ``/reset``, ``/version``) so the stock
``toxiproxy-python`` client drives it, and a real ``toxiproxy-server`` can
take its place unchanged. Each accepted connection opens one to the
upstream; bytes are pumped through per direction, with that direction's
toxics applied (``nemesis.toxics``). Toxics added or removed while a
connection is open take effect on it, as in Toxiproxy.

Upstream host names are resolved when a connection arrives, not when the
proxy is created: ``--docker-network`` resolves a node name (``n2``) to the
current address of that node's container, so proxies can exist before the
containers do and follow a node that restarts with a new address.

Run: ``python -m nemesis.toxiproxy_server --host 127.0.0.1 --port 8474``.
Standard library only (plus the docker SDK for ``--docker-network``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

from nemesis.toxics import Toxic, ToxicError, parse_toxic, slices

VERSION = "2.9.0-squall"
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

    def __init__(self, proxy: Proxy, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
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
        pumps = [asyncio.create_task(self._pump(cl_r, up_w, "upstream")),
                 asyncio.create_task(self._pump(up_r, cl_w, "downstream"))]
        watchdog = asyncio.create_task(self._watch())
        await asyncio.gather(*pumps, return_exceptions=True)
        watchdog.cancel()
        self.close()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, stream: str) -> None:
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

    async def _deliver(self, queue: asyncio.Queue[tuple[float, bytes] | None],
                       dst: asyncio.StreamWriter, stream: str) -> None:
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
                    delay = (t.attr("latency") + rng.uniform(-t.attr("jitter"), t.attr("jitter"))) / 1000
                    last = max(stamp + max(0.0, delay), last)
                    await asyncio.sleep(max(0.0, last - time.monotonic()))
            limit = next((int(t.attr("bytes")) for t in toxics if t.type == "limit_data"), None)
            if limit is not None and sent + len(data) >= limit:
                await self._write(dst, data[:max(0, limit - sent)], toxics)
                return
            await self._write(dst, data, toxics)
            sent += len(data)

    async def _write(self, dst: asyncio.StreamWriter, data: bytes, toxics: list[Toxic]) -> None:
        slicer = next((t for t in toxics if t.type == "slicer"), None)
        pieces = [data] if slicer is None else slices(
            data, int(slicer.attr("average_size")), int(slicer.attr("size_variation")),
            self.proxy.server.rng)
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
                if (t.type == "reset_peer" or t.attr("timeout") > 0) and \
                        now - since >= t.attr("timeout") / 1000:
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
    def __init__(self, server: ToxiproxyServer, name: str, listen: str, upstream: str) -> None:
        self.server = server
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics: dict[str, Toxic] = {}
        self.links: set[Link] = set()
        self._listener: asyncio.Server | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "listen": self.listen, "upstream": self.upstream,
                "enabled": self.enabled, "toxics": [t.to_json() for t in self.toxics.values()]}

    async def enable(self) -> None:
        if self.enabled:
            return
        host, port = split_addr(self.listen)
        try:
            self._listener = await asyncio.start_server(self._accept, host, port)
        except OSError as exc:
            raise ApiError(500, f"proxy {self.name}: cannot listen on {self.listen}: {exc}") from None
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


class ToxiproxyServer:
    """The proxies and the API handlers; ``serve`` runs the HTTP API."""

    def __init__(self, seed: int = 0, resolve: Callable[[str], str] | None = None) -> None:
        self.rng = random.Random(seed)
        self.resolve = resolve or (lambda host: host)
        self.proxies: dict[str, Proxy] = {}
        self._api: asyncio.Server | None = None

    async def serve(self, host: str, port: int) -> int:
        self._api = await asyncio.start_server(self._http, host, port)
        return int(self._api.sockets[0].getsockname()[1])

    async def close(self) -> None:
        for p in list(self.proxies.values()):
            await p.disable()
        if self._api is not None:
            self._api.close()

    # -- the API ---------------------------------------------------------
    async def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = [p for p in path.split("?")[0].split("/") if p]
        if parts == ["version"] and method == "GET":
            return 200, VERSION
        if parts == ["reset"] and method == "POST":
            for p in self.proxies.values():
                p.toxics.clear()
                await p.enable()
            return 204, None
        if parts == ["populate"] and method == "POST":
            return 201, {"proxies": [await self._upsert(b) for b in _list(body)]}
        if parts == ["proxies"]:
            if method == "GET":
                return 200, {n: p.to_json() for n, p in self.proxies.items()}
            if method == "POST":
                return 201, await self._create(body)
        if len(parts) >= 2 and parts[0] == "proxies":
            proxy = self.proxies.get(parts[1])
            if proxy is None:
                raise ApiError(404, f"proxy {parts[1]!r} not found")
            if len(parts) == 2:
                return await self._proxy(method, proxy, body)
            if parts[2] == "toxics":
                return self._toxics(method, proxy, parts[3] if len(parts) > 3 else None, body)
        raise ApiError(404, f"no route for {method} {path}")

    async def _create(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not body.get("name") or not body.get("upstream"):
            raise ApiError(400, "a proxy needs 'name' and 'upstream' (and usually 'listen')")
        if body["name"] in self.proxies:
            raise ApiError(409, f"proxy {body['name']!r} already exists")
        split_addr(body["upstream"])
        proxy = Proxy(self, str(body["name"]), str(body.get("listen") or "127.0.0.1:0"),
                      str(body["upstream"]))
        if body.get("enabled", True):
            await proxy.enable()
        self.proxies[proxy.name] = proxy
        return proxy.to_json()

    async def _upsert(self, body: Any) -> dict[str, Any]:
        old = self.proxies.get(str(body.get("name"))) if isinstance(body, dict) else None
        if old is not None:
            await old.disable()
            del self.proxies[old.name]
        return await self._create(body)

    async def _proxy(self, method: str, proxy: Proxy, body: Any) -> tuple[int, Any]:
        if method == "GET":
            return 200, proxy.to_json()
        if method == "DELETE":
            await proxy.disable()
            del self.proxies[proxy.name]
            return 204, None
        if method in ("POST", "PATCH"):
            body = body if isinstance(body, dict) else {}
            if "upstream" in body:
                split_addr(body["upstream"])
                proxy.upstream = str(body["upstream"])
            if "listen" in body and body["listen"] != proxy.listen:
                was = proxy.enabled
                await proxy.disable()
                proxy.listen = str(body["listen"])
                if was:
                    await proxy.enable()
            if "enabled" in body:
                await (proxy.enable() if body["enabled"] else proxy.disable())
            return 200, proxy.to_json()
        raise ApiError(405, f"{method} is not allowed on a proxy")

    def _toxics(self, method: str, proxy: Proxy, name: str | None, body: Any) -> tuple[int, Any]:
        try:
            if name is None:
                if method == "GET":
                    return 200, [t.to_json() for t in proxy.toxics.values()]
                if method == "POST":
                    toxic = parse_toxic(body)
                    if toxic.name in proxy.toxics:
                        raise ApiError(409, f"toxic {toxic.name!r} already exists on {proxy.name}")
                    proxy.toxics[toxic.name] = toxic
                    return 200, toxic.to_json()
            elif name in proxy.toxics:
                if method == "GET":
                    return 200, proxy.toxics[name].to_json()
                if method in ("POST", "PATCH"):
                    proxy.toxics[name] = proxy.toxics[name].updated(body or {})
                    return 200, proxy.toxics[name].to_json()
                if method == "DELETE":
                    del proxy.toxics[name]
                    return 204, None
            else:
                raise ApiError(404, f"toxic {name!r} not found on proxy {proxy.name}")
        except ToxicError as exc:
            raise ApiError(400, str(exc)) from None
        raise ApiError(405, f"{method} is not allowed here")

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # One request per connection (Connection: close): simple, and every
        # HTTP client handles it.
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (line.partition(":") for line in lines[1:] if line)}
            raw = await reader.readexactly(int(headers.get("content-length", 0) or 0))
            try:
                body = json.loads(raw) if raw.strip() else None
                status, out = await self.handle(method.upper(), path, body)
            except json.JSONDecodeError as exc:
                status, out = 400, {"error": f"body is not JSON: {exc}", "status": 400}
            except ApiError as exc:
                status, out = exc.status, {"error": str(exc), "status": exc.status}
            writer.write(_response(status, out))
            await writer.drain()
        except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def _list(body: Any) -> list[Any]:
    if not isinstance(body, list):
        raise ApiError(400, "populate takes a JSON list of proxies")
    return body


_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 500: "Internal Server Error"}


def _response(status: int, out: Any) -> bytes:
    if out is None:
        data, kind = b"", "application/json"
    elif isinstance(out, str):
        data, kind = out.encode(), "text/plain"
    else:
        data, kind = json.dumps(out).encode(), "application/json"
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n")
    return head.encode() + data


def docker_resolver(network: str) -> Callable[[str], str]:
    """Resolves a node name to its container's current address on ``network``.

    Matches the container's name exactly or by its ``-<name>`` suffix (the
    docker backend names containers ``squall-<run>-<node>``). Unknown names
    are returned unchanged, so plain addresses keep working.
    """
    import docker.errors  # only this mode needs the SDK
    from docker.client import from_env  # not `docker.from_env`: see squall/cluster/dockerutil.py

    client = from_env(version="auto")

    def resolve(host: str) -> str:
        try:
            containers = client.networks.get(network).attrs.get("Containers") or {}
        except docker.errors.DockerException:
            return host
        for info in containers.values():
            name = info.get("Name", "")
            if name == host or name.endswith(f"-{host}"):
                return str(info.get("IPv4Address", "")).split("/")[0] or host
        return host

    return resolve


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m nemesis.toxiproxy_server",
                                 description="Toxiproxy-compatible TCP proxy server")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8474)
    ap.add_argument("--seed", type=int, default=0, help="seeds jitter, slicing and toxicity rolls")
    ap.add_argument("--docker-network", help="resolve upstream node names on this docker network")
    ap.add_argument("--label", default="", help="a marker in the command line, for cleanup")
    ap.add_argument("--owner", type=int, default=0, help="pid of the run that owns this server")
    args = ap.parse_args(argv)
    resolve = docker_resolver(args.docker_network) if args.docker_network else None

    async def run() -> None:
        server = ToxiproxyServer(args.seed, resolve)
        port = await server.serve(args.host, args.port)
        print(f"toxiproxy API on {args.host}:{port}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
