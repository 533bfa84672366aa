"""A third system, written the way a user would write one: a register store and its adapter.

Nothing here is part of Squall. It imports only Squall's public seam
(``squall.protocols``), is found through an entry point (the test writes a
``dist-info`` for it), and runs on the local backend. The "store" is one
process serving keyed registers over HTTP, keeping them in memory and in a
JSON file it fsyncs before it answers, so a SIGKILL loses nothing it
acknowledged. One node is its own leader.

    python memreg.py serve --listen 127.0.0.1:PORT --data DIR --id n1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from squall.protocols import ImageRecipe, NodeContext, NodeSpec, Observation, Port, Result

API = Port(name="api", number=7000, client=True)


# -- the system under test ------------------------------------------------------------


class Registers:
    def __init__(self, data: Path) -> None:
        self.path = data / "registers.json"
        self.lock = threading.Lock()
        self.values: dict[str, Any] = (
            json.loads(self.path.read_text()) if self.path.exists() else {}
        )

    def _persist(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(self.values, f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)

    def apply(self, op: str, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            if op == "read":
                return 200, {"value": self.values.get(key)}
            if op == "write":
                self.values[key] = body["value"]
            elif op == "cas":
                if self.values.get(key) != body["from"]:
                    return 409, {"error": "precondition_failed"}
                self.values[key] = body["to"]
            self._persist()
            return 200, {}


def serve(listen: str, data: Path, node: str) -> None:
    data.mkdir(parents=True, exist_ok=True)
    regs = Registers(data)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, code: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/status":
                self._answer(200, {"role": "leader", "term": 1, "leader": node})
            elif self.path.startswith("/r/"):
                self._answer(*regs.apply("read", self.path[3:], {}))
            else:
                self._answer(404, {"error": "not_found"})

        def do_POST(self) -> None:  # noqa: N802
            size = int(self.headers.get("Content-Length") or 0)
            if size > 4096:
                self._answer(413, {"error": "too_large"})
                return
            body = json.loads(self.rfile.read(size) or b"{}")
            op, _, key = self.path[1:].partition("/")
            if op not in ("write", "cas"):
                self._answer(404, {"error": "not_found"})
                return
            self._answer(*regs.apply(op, key, body))

    host, _, port = listen.rpartition(":")
    ThreadingHTTPServer((host, int(port)), Handler).serve_forever()


# -- its adapter: the only part Squall sees -----------------------------------------------


class MemRegClient:
    """``fail`` only when the store certainly did not apply the request, ``info`` otherwise."""

    def __init__(self, addresses: Callable[[], Mapping[str, str]]) -> None:
        self.addresses = addresses
        self.http = requests.Session()

    def _send(self, method: str, path: str, body: Any = None) -> tuple[str, Any, str | None, str]:
        node, address = sorted(self.addresses().items())[0]
        try:
            r = self.http.request(method, f"http://{address}{path}", json=body, timeout=(0.3, 1.0))
        except requests.ConnectionError as exc:
            refused = "refused" in str(exc).lower()
            return ("fail" if refused else "info"), None, "connection", node
        except requests.Timeout:
            return "info", None, "timeout", node
        data = r.json()
        if r.status_code == 200:
            return "ok", data, None, node
        code = data.get("error")
        return (
            ("fail" if code in ("precondition_failed", "not_found", "too_large") else "info"),
            None,
            code,
            node,
        )

    def read(self, key: str) -> Result:
        kind, data, error, node = self._send("GET", f"/r/{key}")
        return Result(type=kind, value=(data or {}).get("value"), error=error, node=node)

    def write(self, key: str, value: Any) -> Result:
        kind, _, error, node = self._send("POST", f"/write/{key}", {"value": value})
        return Result(type=kind, error=error, node=node)

    def cas(self, key: str, old: Any, new: Any) -> Result:
        kind, _, error, node = self._send("POST", f"/cas/{key}", {"from": old, "to": new})
        return Result(type=kind, error=error, node=node)


class MemReg:
    name = "memreg"
    ports = (API,)
    peer_port = API.name
    bugs: Mapping[str, str] = {}
    unsupported: Mapping[str, str] = {"partition": "one node has no peers to cut off"}
    options: Mapping[str, Any] = {}

    def image(self) -> ImageRecipe:
        return ImageRecipe(name="memreg-node", packages=("python3-requests",))

    def node(self, ctx: NodeContext) -> NodeSpec:
        return NodeSpec(
            argv=[
                sys.executable,
                str(Path(__file__).resolve()),
                "serve",
                "--listen",
                ctx.listen[API.name],
                "--data",
                ctx.data_dir,
                "--id",
                ctx.node,
            ]
        )

    def client(
        self, addresses: Callable[[], Mapping[str, str]], worker: int, options: Mapping[str, Any]
    ) -> object:
        return MemRegClient(addresses)

    def observe(self, address: str, timeout: float) -> Observation | None:
        try:
            s = requests.get(f"http://{address}/status", timeout=timeout).json()
        except (requests.RequestException, ValueError):
            return None
        return Observation(role=s["role"], term=s["term"], leader=s["leader"])


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["serve"])
    p.add_argument("--listen", required=True)
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--id", required=True)
    a = p.parse_args()
    serve(a.listen, a.data, a.id)
