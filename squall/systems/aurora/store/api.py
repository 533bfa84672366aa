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

from . import bugs, failpoints, limits, peerauth, schema
from .fsutil import DamagedData
from .limits import MAX_KEY, TooLarge, TooSlow
from .raft import BATCH_BYTES, NotLeader
from .standby import Recovering
from .statemachine import applied_of, digest_of
from .store import Indeterminate, Store
from .wal import Entry

log = logging.getLogger("squall.api")
DEFAULT_BODY_TIMEOUT = 30.0  # seconds; Api uses the node's body_timeout_ms
STATUS = {
    "not_leader": 421,
    "unavailable": 503,
    "timeout": 504,
    "precondition_failed": 409,
    "bad_request": 400,
    "not_found": 404,
    "too_large": 413,
    "request_timeout": 408,  # the body was too slow: nothing was done (unlike "timeout")
    "forbidden": 403,
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
    except Recovering as e:  # a cold standby rebuilding its state: nothing was done
        return error_response("unavailable", str(e))
    except ApiError as e:
        resp = error_response(e.code, e.message, **e.extra)
        if e.code in ("too_large", "request_timeout"):
            resp.force_close()  # the rest of the body is never read: drop the connection
        return resp
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


async def read_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """The body, read while it streams in and refused once past ``limit`` (limits.read_body)."""
    try:
        return await limits.read_body(request, limit, timeout)
    except TooLarge as e:
        raise ApiError("too_large", str(e)) from None
    except TooSlow as e:
        raise ApiError("request_timeout", str(e)) from None


async def json_body(
    request: web.Request,
    allowed: set[str],
    required: set[str],
    limit: int,
    timeout: float = DEFAULT_BODY_TIMEOUT,
) -> dict[str, Any]:
    raw = await read_body(request, limit, timeout)
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
    said = limits.request_id_problem(body.get("request_id"))
    if said:
        raise ApiError("bad_request", said)
    return body


class Api:
    def __init__(self, store: Store, guard: limits.ConnectionGuard | None = None) -> None:
        self.store = store
        self.cfg = store.cfg
        self.timeout = self.cfg.request_timeout_ms / 1000
        self.body_timeout = self.cfg.body_timeout_ms / 1000
        self.guard = guard
        # An AppendEntries or vote: a batch (raft.BATCH_BYTES) plus the one entry that
        # may exceed it, plus its own fields.
        self.peer_limit = BATCH_BYTES + limits.max_entry_bytes(self.cfg.max_value_bytes) + 65536

    def _application(self, client_max_size: int) -> web.Application:
        # Bodies are limited per route as they stream (read_body); aiohttp's own cap is a backstop.
        middlewares = [errors_as_json] + ([self.guard.middleware] if self.guard else [])
        return web.Application(middlewares=middlewares, client_max_size=client_max_size)

    def peer_routes(self) -> list[web.RouteDef]:
        return [
            web.post("/raft/vote", self.raft_vote),
            web.post("/raft/append", self.raft_append),
            web.post("/raft/snapshot", self.raft_snapshot),
        ]

    def peer_app(self) -> web.Application:
        """Raft's RPCs, on the peer port (``peer_listen``): never published to the host."""
        app = self._application(max(self.cfg.max_snapshot_bytes, self.peer_limit) + 1)
        app.add_routes([*self.peer_routes(), web.get("/health", self.health)])
        return app

    def app(self) -> web.Application:
        """The client API (and Raft's RPCs too when the node has no ``peer_listen``)."""
        app = self._application(limits.max_entry_bytes(self.cfg.max_value_bytes))
        if self.cfg.peer_listen is None:
            app.add_routes(self.peer_routes())
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
                web.post("/admin/failpoints", self.admin_failpoints),
                web.get("/health", self.health),
            ]
        )
        # The scheduler domain's routes on the same server (its ops are registered by system.store).
        from . import scheduler_api  # noqa: PLC0415 (it imports this module)

        scheduler_api.add_routes(app, self)
        return app

    # -- helpers ---------------------------------------------------------------------
    def _key(self, request: web.Request) -> str:
        key = request.match_info["key"]
        said = limits.key_problem(key)
        if said:
            raise ApiError("bad_request", said)
        return key

    def _check_value(self, name: str, value: Any) -> None:
        said = limits.value_problem(name, value, self.cfg.max_value_bytes)
        if said:
            raise ApiError("too_large", said)

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
            request,
            {"value", "request_id"},
            {"value"},
            2 * self.cfg.max_value_bytes + 4096,
            self.body_timeout,
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
            self.body_timeout,
        )
        self._check_value("from", body["from"])
        self._check_value("to", body["to"])
        return await self._write({"op": "kv.cas", "key": key, **body})

    async def _confirmed_read(self, fn: Any) -> Any:
        """Runs ``fn(conn)`` on a reader connection once this node has confirmed, through
        ReadIndex, that it still leads and has applied everything committed before the read
        began: a linearizable read, never a local one on a node that might be deposed."""
        self.store.check_serving()
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
        """Admin calls are signed with the cluster secret, like peers' (sender ``admin``)."""
        body = await read_body(request, 4096, self.body_timeout)
        self._authenticate(request, body, {peerauth.ADMIN}, peerauth.ANY_NODE)
        s = await self.store.snapshot()
        return web.json_response({k: s[k] for k in ("index", "codec", "bytes", "ms")})

    async def admin_failpoints(self, request: web.Request) -> web.Response:
        """Arms (``action``: crash | error | sleep:<ms>, ``<n>*`` first to fire n times) or
        disarms (``off``) a failpoint; ``at: next-start`` arms it for the next start only.
        Signed like every admin call: a failpoint crashes or stalls the node."""
        body = await read_body(request, 4096, self.body_timeout)
        self._authenticate(request, body, {peerauth.ADMIN}, peerauth.ANY_NODE)
        try:
            req = json.loads(body)
            point, action, at = str(req["point"]), str(req["action"]), req.get("at", "now")
        except (ValueError, KeyError, TypeError):
            raise ApiError(
                "bad_request",
                'body must be {"point": NAME, "action": ACTION, "at"?: now|next-start}',
            ) from None
        try:
            if at == "next-start":
                failpoints.arm_next_start(self.cfg.data_dir, point, action)
            elif at != "now":
                raise failpoints.FailpointError(f"at {at!r} must be now or next-start")
            elif action == "off":
                failpoints.disarm(point)
            else:
                failpoints.arm(point, action)
        except failpoints.FailpointError as e:
            raise ApiError("bad_request", str(e)) from None
        return web.json_response({"armed": failpoints.armed(), "hits": failpoints.hits()})

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

    def _authenticate(
        self, request: web.Request, body: bytes, allowed: set[str], addressee: str
    ) -> str:
        try:
            return peerauth.verify(
                self.store.secret,
                request.headers,
                allowed,
                addressee,
                request.path,
                dict(request.query),
                body,
            )
        except peerauth.Refused as e:
            log.warning("refused %s %s: %s", request.method, request.path, e)
            raise ApiError("forbidden", str(e)) from None

    async def _peer_json(self, request: web.Request, sender_field: str) -> dict[str, Any]:
        """A peer RPC's body, once it is signed by a configured peer speaking as itself."""
        self._check_addressee(request)
        raw = await read_body(request, self.peer_limit, self.body_timeout)
        sender = self._authenticate(request, raw, set(self.cfg.peer_ids()), self.cfg.id)
        try:
            body = json.loads(raw)
        except ValueError:
            raise ApiError("bad_request", "raft RPC body is not JSON") from None
        if not isinstance(body, dict):
            raise ApiError("bad_request", "raft RPC body must be an object")
        if body.get(sender_field) != sender:
            raise ApiError("forbidden", f"{sender} may not speak as {body.get(sender_field)!r}")
        return body

    async def raft_vote(self, request: web.Request) -> web.Response:
        body = await self._peer_json(request, "candidate")
        try:
            return web.json_response(await self.store.raft.on_vote(body))
        except (KeyError, TypeError, ValueError) as e:
            raise ApiError("bad_request", f"malformed vote request: {e}") from None

    async def raft_append(self, request: web.Request) -> web.Response:
        body = await self._peer_json(request, "leader")
        try:
            entries = [Entry.from_json(raw) for raw in body["entries"]]
        except (KeyError, TypeError, ValueError) as e:
            raise ApiError("bad_request", f"malformed append request: {e}") from None
        for entry in entries:
            # The leader's API refused such an entry before appending it: none came from it.
            said = limits.command_problem(entry.command, self.cfg.max_value_bytes)
            if said:
                log.warning(
                    "refused an append from %s: entry %d: %s", body["leader"], entry.index, said
                )
                raise ApiError("bad_request", f"entry {entry.index}: {said}")
        try:
            return web.json_response(await self.store.raft.on_append(body))
        except (KeyError, TypeError, ValueError) as e:
            raise ApiError("bad_request", f"malformed append request: {e}") from None

    async def raft_snapshot(self, request: web.Request) -> web.Response:
        self._check_addressee(request)
        try:
            term, leader = int(request.query["term"]), request.query["leader"]
        except (KeyError, ValueError):
            raise ApiError("bad_request", "snapshot needs ?term=<int>&leader=<id>") from None
        blob = await read_body(request, self.cfg.max_snapshot_bytes, self.body_timeout * 4)
        sender = self._authenticate(request, blob, set(self.cfg.peer_ids()), self.cfg.id)
        if leader != sender:
            raise ApiError("forbidden", f"{sender} may not send a snapshot as {leader!r}")
        try:
            return web.json_response(await self.store.raft.on_snapshot(term, leader, blob))
        except DamagedData as e:
            log.warning("refused the snapshot from %s: %s", leader, e)
            raise ApiError("bad_request", f"snapshot refused: {e}") from None
