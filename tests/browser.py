"""A real headless Chromium, driven over the DevTools protocol, for the page tests.

Debian's ``chromium`` (installed by ``./scripts/setup --with-browser``, which
the test command runs), started with a private profile and a DevTools port
on 127.0.0.1, driven with aiohttp's websocket client: load a file, run
JavaScript, move the mouse, take a screenshot. The page sees real mouse
events, so a hover test exercises the page's own event handlers.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One tab. Every call runs to completion on the page's own event loop."""

    def __init__(self, ws_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        self.session = self.loop.run_until_complete(self._open(ws_url))

    async def _open(self, url: str) -> aiohttp.ClientWebSocketResponse:
        self.http = aiohttp.ClientSession()
        return await self.http.ws_connect(url, max_msg_size=64 * 2**20)

    async def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        n = next(self.ids)
        await self.session.send_json({"id": n, "method": method, "params": params})
        while True:
            msg = json.loads((await self.session.receive(timeout=30)).data)
            if msg.get("id") == n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.loop.run_until_complete(self._call(method, params))

    def open(self, path: Path, width: int = 1400, height: int = 900) -> float:
        """Loads a file and waits for its load event; returns the seconds it took."""
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.call("Page.enable")
        self.events.clear()
        started = time.monotonic()
        self.call("Page.navigate", url=path.resolve().as_uri())
        deadline = started + 30
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} did not finish loading within 30 s")
            self.call("Runtime.evaluate", expression="1")
        return time.monotonic() - started

    def js(self, expression: str) -> Any:
        got = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in got:
            raise RuntimeError(f"{expression}: {got['exceptionDetails']}")
        return got["result"].get("value")

    def hover(self, x: float, y: float) -> None:
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)

    def click(self, x: float, y: float) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        async def shut() -> None:
            await self.session.close()
            await self.http.close()

        self.loop.run_until_complete(shut())
        self.loop.close()


@contextmanager
def browser() -> Iterator[Page]:
    """A headless Chromium with one tab; always stopped and its profile removed."""
    exe = chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed: run ./scripts/setup --with-browser")
    profile = Path(tempfile.mkdtemp(prefix="squall-chromium-"))
    proc = subprocess.Popen(
        [
            exe,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    page: Page | None = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"chromium gave no DevTools port (exit {proc.poll()})")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])

        async def target() -> str:
            async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/json") as r:
                tabs = await r.json()
            return next(t["webSocketDebuggerUrl"] for t in tabs if t.get("type") == "page")

        page = Page(asyncio.run(target()))
        yield page
    finally:
        if page is not None:
            page.close()
        proc.kill()
        proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)
