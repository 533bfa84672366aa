"""The HTTP API of docs/contracts.md §2: clients, peers and admin on one aiohttp server.

Error codes are a promise to the client about what happened: ``not_leader``
and ``unavailable`` only when nothing was appended, ``timeout`` (504) when
the write may still commit. The history checker relies on that distinction.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from . import bugs, schema
from .raft import NotLeader
from .statemachine import applied_of, digest_of
from .store import Indeterminate, Store

log = logging.getLogger("squall.api")
MAX_KEY = 1024
MAX_REQUEST_ID = 256
STATUS = {
    "not_leader": 421,
    "unavailable": 503,
    "timeout": 504,
    "precondition_failed": 409,
    "bad_request": 400,
    "not_found": 404,
    "too_large": 413,
    "method_not_allowed": 405,
    "internal": 500,
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.extra = code, message, extra


def error_response(code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message, **extra}}, status=STATUS[code]
    )


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        return error_response(e.code, e.message, **e.extra)
    except web.HTTPException as e:  # aiohttp's own: unknown route, wrong method, body too large
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            e.status, "bad_request"
        )
        return error_response(code, e.reason or "bad request")
    except asyncio.CancelledError:
        raise
    except ConnectionResetError:  # the client (often a killed peer) hung up mid-request
        return error_response("bad_request", "connection lost while reading the request")
    except Exception as e:
        log.exception("internal error on %s %s", request.method, request.path)
        return error_response("internal", f"{type(e).__name__}: {e}")


async def json_body(
    request: web.Request, allowed: set[str], required: set[str], limit: int
) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(
            "too_large", f"request body of {request.content_length} bytes exceeds {limit}"
        )
    raw = await request.read()
    if len(raw) > limit:
        raise ApiError("too_large", f"request body of {len(raw)} bytes exceeds {limit}")
    try:
        body = json.loads(raw)
    except ValueError as e:
        raise ApiError("bad_request", f"body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise ApiError("bad_request", "body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(
            "bad_request",
            f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
        )
    missing = sorted(required - set(body))
    if missing:
        raise ApiError("bad_request", f"missing key(s) {', '.join(missing)}")
    rid = body.get("request_id")
    if rid is not None and (not isinstance(rid, str) or not 0 < len(rid) <= MAX_REQUEST_ID):
        raise ApiError(
            "bad_request", f"request_id must be a string of 1..{MAX_REQUEST_ID} characters"
        )
    return body


class Api:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.cfg = store.cfg
        self.timeout = self.cfg.request_timeout_ms / 1000

    def app(self) -> web.Application:
        # Snapshots arrive whole in one request; client bodies are checked per handler.
        app = web.Application(middlewares=[errors_as_json], client_max_size=1 << 30)
        app.add_routes(
            [
                web.get("/kv", self.list_kv),
                web.get("/kv/{key}", self.get_kv),
                web.put("/kv/{key}", self.put_kv),
                web.post("/kv/{key}/cas", self.cas_kv),
                web.get("/status", self.status),
                web.get("/digest", self.digest),
                web.get("/digest/history", self.digest_history),
                web.post("/admin/snapshot", self.admin_snapshot),
                web.get("/health", self.health),
                web.post("/raft/vote", self.raft_vote),
                web.post("/raft/append", self.raft_append),
                web.post("/raft/snapshot", self.raft_snapshot),
            ]
        )
        # The scheduler domain's routes on the same server (its ops are registered by system.store).
        from . import scheduler_api  # noqa: PLC0415 (it imports this module)

        scheduler_api.add_routes(app, self)
        return app

    # -- helpers ---------------------------------------------------------------------
    def _key(self, request: web.Request) -> str:
        key = request.match_info["key"]
        if not 0 < len(key.encode()) <= MAX_KEY:
            raise ApiError("bad_request", f"key must be 1..{MAX_KEY} bytes")
        return key

    def _check_value(self, name: str, value: Any) -> None:
        size = len(schema.canonical(value).encode())
        if size > self.cfg.max_value_bytes:
            raise ApiError(
                "too_large",
                f"{name} is {size} bytes; max_value_bytes is {self.cfg.max_value_bytes}",
            )

    def _not_leader(self, leader: str | None) -> ApiError:
        if leader is None:
            return ApiError("unavailable", "no leader is known; retry shortly")
        return ApiError("not_leader", f"this node is not the leader; ask {leader}", leader=leader)

    async def _write(self, command: dict[str, Any]) -> web.Response:
        try:
            index, result = await self.store.submit(command, self.timeout)
        except NotLeader as e:
            raise self._not_leader(e.leader) from None
        except Indeterminate:
            raise ApiError(
                "timeout", "the write was appended but not confirmed in time; it may still commit"
            ) from None
        if isinstance(result, dict) and "error" in result:
            extra = {k: v for k, v in result.items() if k != "error"}
            raise ApiError(result["error"], extra.pop("message", result["error"]), **extra)
        return web.json_response({"ok": True, "index": index})

    # -- client API ------------------------------------------------------------------
    async def put_kv(self, request: web.Request) -> web.Response:
        key = self._key(request)
        body = await json_body(
            request, {"value", "request_id"}, {"value"}, 2 * self.cfg.max_value_bytes + 4096
        )
        self._check_value("value", body["value"])
        return await self._write({"op": "kv.put", "key": key, **body})

    async def cas_kv(self, request: web.Request) -> web.Response:
        key = self._key(request)
        body = await json_body(
            request,
            {"from", "to", "request_id"},
            {"from", "to"},
            4 * self.cfg.max_value_bytes + 4096,
        )
        self._check_value("from", body["from"])
        self._check_value("to", body["to"])
        return await self._write({"op": "kv.cas", "key": key, **body})

    async def _confirmed_read(self, fn: Any) -> Any:
        """Runs ``fn(conn)`` on a reader connection once this node has confirmed, through
        ReadIndex, that it still leads and has applied everything committed before the read
        began: a linearizable read, never a local one on a node that might be deposed."""
        if bugs.STALE_READ not in self.cfg.bugs:  # bugs.STALE_READ skips all of this
            try:
                index = await self.store.raft.read_index(self.timeout)
            except NotLeader as e:
                raise self._not_leader(e.leader) from None
            except TimeoutError:
                raise ApiError("timeout", "leadership could not be confirmed in time") from None
            if not await self.store.wait_applied(index, self.timeout):
                raise ApiError("timeout", f"index {index} was not applied in time")

        def read(conn: sqlite3.Connection) -> Any:
            conn.execute("BEGIN")
            try:
                return applied_of(conn)[0], fn(conn)
            finally:
                conn.execute("COMMIT")

        return await self.store.on_reader(self.store.sm.read, read)

    async def get_kv(self, request: web.Request) -> web.Response:
        key = self._key(request)
        applied, value = await self._confirmed_read(lambda conn: schema.read_kv(conn, key))
        return web.json_response({"key": key, "value": value, "index": applied})

    async def list_kv(self, request: web.Request) -> web.Response:
        """``GET /kv?prefix=P``: every key starting with P and its value, in one read."""
        unknown = set(request.query) - {"prefix"}
        if unknown:
            raise ApiError(
                "bad_request", f"unknown query parameters {sorted(unknown)}; known: prefix"
            )
        prefix = request.query.get("prefix", "")
        if len(prefix.encode()) > MAX_KEY:
            raise ApiError("bad_request", f"prefix must be at most {MAX_KEY} bytes")
        applied, items = await self._confirmed_read(lambda conn: schema.read_prefix(conn, prefix))
        return web.json_response({"prefix": prefix, "items": items, "index": applied})

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(self.store.status())

    async def digest(self, request: web.Request) -> web.Response:
        def read(conn: sqlite3.Connection) -> tuple[int, str]:
            conn.execute("BEGIN")  # one read transaction: the rows and the index of one state
            try:
                return applied_of(conn)[0], digest_of(conn)
            finally:
                conn.execute("COMMIT")

        index, d = await self.store.on_reader(self.store.sm.read, read)
        return web.json_response({"index": index, "digest": d})

    async def digest_history(self, request: web.Request) -> web.Response:
        return web.json_response(await self.store.on_reader(self.store.sm.digests.read))

    async def admin_snapshot(self, request: web.Request) -> web.Response:
        s = await self.store.snapshot()
        return web.json_response({k: s[k] for k in ("index", "codec", "bytes", "ms")})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    # -- peers ------------------------------------------------------------------------
    def _check_addressee(self, request: web.Request) -> None:
        """Refuses a raft RPC meant for another node (it reached us at a stale address)."""
        to = request.query.get("to")
        if to is not None and to != self.cfg.id:
            raise ApiError(
                "bad_request",
                f"this raft RPC is addressed to {to} but this is {self.cfg.id}: the "
                "sender reached a stale address and must connect to its peer anew",
            )

    async def _peer_json(self, request: web.Request) -> dict[str, Any]:
        self._check_addressee(request)
        try:
            body = await request.json()
        except ValueError:
            raise ApiError("bad_request", "raft RPC body is not JSON") from None
        if not isinstance(body, dict):
            raise ApiError("bad_request", "raft RPC body must be an object")
        return body

    async def raft_vote(self, request: web.Request) -> web.Response:
        body = await self._peer_json(request)
        try:
            return web.json_response(await self.store.raft.on_vote(body))
        except (KeyError, TypeError, ValueError) as e:
            raise ApiError("bad_request", f"malformed vote request: {e}") from None

    async def raft_append(self, request: web.Request) -> web.Response:
        body = await self._peer_json(request)
        try:
            return web.json_response(await self.store.raft.on_append(body))
        except (KeyError, TypeError) as e:
            raise ApiError("bad_request", f"malformed append request: {e}") from None

    async def raft_snapshot(self, request: web.Request) -> web.Response:
        self._check_addressee(request)
        try:
            term, leader = int(request.query["term"]), request.query["leader"]
        except (KeyError, ValueError):
            raise ApiError("bad_request", "snapshot needs ?term=<int>&leader=<id>") from None
        blob = await request.read()
        return web.json_response(await self.store.raft.on_snapshot(term, leader, blob))
