"""Squall's own Toxiproxy: the Toxiproxy HTTP API over a real asyncio TCP proxy.

Shopify's ``toxiproxy-server`` cannot be downloaded where Squall runs, and
this kernel has no netem, so this is the only way to slow or cut a link.
It speaks the same API (``/proxies``, ``/proxies/{name}``,
``/proxies/{name}/toxics[/{toxic}]``, ``/reset``, ``/version``) so the stock
``toxiproxy-python`` client drives it, and a real ``toxiproxy-server`` can
take its place unchanged. Each accepted connection opens one to the
upstream; bytes are pumped through per direction, with that direction's
toxics applied (``nemesis.toxiproxy_proxy``, ``nemesis.toxics``). Toxics
added or removed while a connection is open take effect on it, as in
Toxiproxy.

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
import sys
from collections.abc import Callable
from typing import Any

from squall.nemesis.toxics import ToxicError, parse_toxic
from squall.nemesis.toxiproxy_proxy import ApiError, Proxy, split_addr

VERSION = "2.9.0-squall"


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
        proxy = Proxy(
            self, str(body["name"]), str(body.get("listen") or "127.0.0.1:0"), str(body["upstream"])
        )
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
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
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


_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    500: "Internal Server Error",
}


def _response(status: int, out: Any) -> bytes:
    if out is None:
        data, kind = b"", "application/json"
    elif isinstance(out, str):
        data, kind = out.encode(), "text/plain"
    else:
        data, kind = json.dumps(out).encode(), "application/json"
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\nContent-Type: {kind}\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    )
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
    ap = argparse.ArgumentParser(
        prog="python -m nemesis.toxiproxy_server",
        description="Toxiproxy-compatible TCP proxy server",
    )
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8474)
    ap.add_argument("--seed", type=int, default=0, help="seeds jitter, slicing and toxicity rolls")
    ap.add_argument("--docker-network", help="resolve upstream node names on this docker network")
    ap.add_argument("--label", default="", help="a marker in the command line, for cleanup")
    ap.add_argument("--owner", default="", help="the token of the run that owns this server")
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
