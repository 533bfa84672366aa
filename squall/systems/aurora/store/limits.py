"""What a node accepts: sizes of keys, values, bodies and entries; how long a connection may idle.

One place for the limits, because a limit that holds on one path only is no
limit: an entry arriving by replication obeys the same key and value sizes as
a client's request (a forged append once committed a 3 KB key everywhere),
and every body is refused *while it streams in*, once it passes its route's
limit, so a 300 MiB upload costs the node one chunk of memory, not 300 MiB.

Connections: a socket that sends nothing (or a request's head one byte at a
time) holds a file descriptor and a task forever unless someone closes it.
``ConnectionGuard`` closes a connection that has been idle, with no request
being handled, for ``idle_timeout``, and one whose request head has not been
complete within ``header_timeout`` of its first byte; a body must arrive
within ``body_timeout`` (``read_body``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import schema

MAX_KEY = 1024
MAX_REQUEST_ID = 256
BODY_LIMIT = 1 << 20  # the largest client body (scheduler requests)
ENTRY_SLACK = 4096  # an entry's own fields beside what the client sent


class TooLarge(Exception):
    """A body or entry past its limit; the message names both sizes."""


class TooSlow(Exception):
    """A body that did not arrive in time."""


def max_entry_bytes(max_value_bytes: int) -> int:
    """No client request makes an entry larger than this (a cas carries two values)."""
    return max(BODY_LIMIT, 4 * max_value_bytes) + ENTRY_SLACK


def value_problem(name: str, value: Any, max_value_bytes: int) -> str | None:
    size = len(schema.canonical(value).encode())
    if size > max_value_bytes:
        return f"{name} is {size} bytes; max_value_bytes is {max_value_bytes}"
    return None


def key_problem(key: Any) -> str | None:
    if not isinstance(key, str) or not 0 < len(key.encode()) <= MAX_KEY:
        return f"key must be a string of 1..{MAX_KEY} bytes"
    return None


def request_id_problem(rid: Any) -> str | None:
    if rid is not None and (not isinstance(rid, str) or not 0 < len(rid) <= MAX_REQUEST_ID):
        return f"request_id must be a string of 1..{MAX_REQUEST_ID} characters"
    return None


def command_problem(cmd: Any, max_value_bytes: int, depth: int = 0) -> str | None:
    """Why a replicated command could never have come from the client API, or None.

    Checked on every entry a follower receives: the leader's API applied these
    very rules before appending, so an entry that breaks one was not made by it.
    """
    if not isinstance(cmd, dict) or not isinstance(cmd.get("op"), str):
        return "an entry's command must be an object with an op"
    op = cmd["op"]
    if op == "noop":
        return None
    if op not in schema.OPS:
        return f"op {op[:64]!r} is not one this store applies"
    if depth == 0:
        size = len(schema.canonical(cmd).encode())
        if size > max_entry_bytes(max_value_bytes):
            return f"the command is {size} bytes; no request makes one over {max_entry_bytes(max_value_bytes)}"
    said = request_id_problem(cmd.get("request_id"))
    if said:
        return said
    if op in ("kv.put", "kv.cas"):
        said = key_problem(cmd.get("key"))
        for name in ("value",) if op == "kv.put" else ("from", "to"):
            said = said or value_problem(name, cmd.get(name), max_value_bytes)
        return said
    if op == "txn":
        subs = cmd.get("ops")
        if not isinstance(subs, list) or depth > 0:
            return "a txn holds a list of ops, and no txn"
        return next(
            (p for s in subs if (p := command_problem(s, max_value_bytes, depth + 1))), None
        )
    return None


async def read_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """The whole body, refused (TooLarge) as soon as it passes ``limit``, or TooSlow."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"request body of {request.content_length} bytes exceeds {limit}")
    buf = bytearray()
    try:
        async with asyncio.timeout(timeout):
            while chunk := await request.content.readany():
                buf += chunk
                if len(buf) > limit:
                    raise TooLarge(f"request body exceeds {limit} bytes")
    except TimeoutError:
        raise TooSlow(f"the request body did not arrive within {timeout:g} s") from None
    return bytes(buf)


@dataclass
class _Conn:
    last: float  # last byte received, or the end of the last request handled
    partial_since: float | None = None  # first byte of a request head not yet complete
    busy: int = 0  # requests being handled


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the guard watching its bytes."""

    def __init__(self, guard: ConnectionGuard, inner: Any) -> None:
        self._guard, self._inner = guard, inner
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._guard.conns[transport] = _Conn(last=self._guard.now())
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        c = self._guard.conns.get(self._transport) if self._transport else None
        if c is not None:
            c.last = self._guard.now()
            if not c.busy and c.partial_since is None:
                c.partial_since = c.last
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()  # type: ignore[no-any-return]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._guard.conns.pop(self._transport, None)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class ConnectionGuard:
    def __init__(self, idle_timeout: float, header_timeout: float) -> None:
        self.idle_timeout, self.header_timeout = idle_timeout, header_timeout
        self.conns: dict[asyncio.BaseTransport, _Conn] = {}
        self.closed = 0  # connections this guard closed (in /status)

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()

    def protocol(self, inner: Callable[[], Any]) -> Callable[[], asyncio.Protocol]:
        return lambda: _Guarded(self, inner())

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        c = self.conns.get(request.transport) if request.transport else None
        if c is None:
            return await handler(request)
        c.busy += 1
        c.partial_since = None  # the head is complete: the handler has it
        try:
            return await handler(request)
        finally:
            c.busy -= 1
            c.last = self.now()

    def sweep(self) -> None:
        now = self.now()
        for transport, c in list(self.conns.items()):
            if c.busy:
                continue
            slow_head = c.partial_since is not None and now - c.partial_since > self.header_timeout
            if slow_head or now - c.last > self.idle_timeout:
                self.closed += 1
                transport.close()

    async def run(self) -> None:
        every = max(0.05, min(self.idle_timeout, self.header_timeout) / 4)
        while True:
            await asyncio.sleep(every)
            self.sweep()
