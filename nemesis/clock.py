"""Clock skew with libfaketime, inside the node's container only.

Changing the real clock of a container changes the host's (there is one
kernel clock), which broke hosts in Jepsen's docker setup; so the node
process is started with libfaketime preloaded and reads its offset from a
file (``FAKETIME_TIMESTAMP_FILE``, re-read on every call with
``FAKETIME_NO_CACHE=1``). Rewriting that file skews the node's wall clock at
once. The monotonic clock stays real (``FAKETIME_DONT_FAKE_MONOTONIC=1``),
as with a real NTP step: timers and timeouts keep working, timestamps lie.

``bump`` shifts the clock by ``offset`` seconds for the window; ``strobe``
flips it between ``+offset`` and 0 every ``period`` ms until stopped.
"""

from __future__ import annotations

import threading
from typing import Any

from nemesis.base import Fault, NemesisError, merge_docker_extra
from squall.cluster.base import ClusterSpec

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
OFFSET_FILE = "/run/squall-clock"
ENV = (f"LD_PRELOAD={LIBFAKETIME} FAKETIME_TIMESTAMP_FILE={OFFSET_FILE} FAKETIME_NO_CACHE=1 "
       "FAKETIME_DONT_FAKE_MONOTONIC=1")


class Clock(Fault):
    kind = "clock"
    options = frozenset({"offset", "target", "nodes", "mode", "period"})

    def __init__(self, max_offset: float = 60.0) -> None:
        super().__init__()
        self.max_offset = max_offset
        self.skewed: list[str] = []
        self._strobe: threading.Thread | None = None
        self._halt = threading.Event()

    configure_last = True  # its wrapper must be the one that execs the node itself

    def configure(self, spec: ClusterSpec) -> None:
        # libfaketime is preloaded into the node process only (the last
        # wrapper), not container-wide: other tools (timeout, a Python FUSE
        # daemon calling time.sleep) misbehave under it with a real monotonic
        # clock. The offset file is reset first, so a restarted container
        # comes back with an honest clock.
        merge_docker_extra(spec, {
            "command_prefix": ["sh", "-c", f'echo +0 > {OFFSET_FILE} && exec env {ENV} "$@"',
                               "squall-clock"],
        })

    def node_time(self, node: str) -> float:
        """The node's wall clock as the node sees it (under the same libfaketime)."""
        rc, out = self.live.exec(node, ["env", *ENV.split(), "python3", "-c",
                                        "import time; print(time.time())"])
        if rc != 0:
            raise NemesisError(f"could not read the clock of {node} (exit {rc}): {out.strip()}")
        return float(out.strip().splitlines()[-1])

    def set_offset(self, node: str, seconds: float) -> None:
        text = f"{seconds:+.3f}"
        rc, out = self.live.exec(node, ["sh", "-c", f"echo {text} > {OFFSET_FILE}.tmp && "
                                                     f"mv {OFFSET_FILE}.tmp {OFFSET_FILE}"])
        if rc != 0:
            raise NemesisError(f"could not set the clock of {node} (exit {rc}): {out.strip()}; "
                               "was the cluster configured with the clock nemesis?")

    def start(self, params: dict[str, Any], leader: str | None) -> dict[str, Any]:
        mode = params.get("mode", "bump")
        if mode not in ("bump", "strobe"):
            raise NemesisError(f"clock mode {mode!r} must be bump or strobe")
        offset = params.get("offset")
        if offset is None:
            offset = round(self.rng.uniform(1, self.max_offset), 3) * self.rng.choice([-1, 1])
        nodes = self.pick_nodes(params, leader)
        self.skewed = nodes
        for node in nodes:
            self.set_offset(node, float(offset))
        value: dict[str, Any] = {"targets": nodes, "leader": leader, "offset": offset, "mode": mode}
        if mode == "strobe":
            period = float(params.get("period", 500)) / 1000
            value["period"] = params.get("period", 500)
            self._halt.clear()
            self._strobe = threading.Thread(target=self._flip, args=(nodes, float(offset), period),
                                            name="squall-clock-strobe", daemon=True)
            self._strobe.start()
        return value

    def pinned(self, params: Any, value: Any) -> dict[str, Any]:
        out = super().pinned(params, value)
        if "offset" in value:
            out["offset"] = value["offset"]
        return out

    def _flip(self, nodes: list[str], offset: float, period: float) -> None:
        on = True
        while not self._halt.wait(period):
            on = not on
            for node in nodes:
                try:
                    self.set_offset(node, offset if on else 0.0)
                except Exception:  # noqa: BLE001 - a killed node misses a flip; stop resets it
                    pass

    def stop(self, params: dict[str, Any]) -> dict[str, Any]:
        self._halt.set()
        if self._strobe is not None:
            self._strobe.join(10)
            self._strobe = None
        nodes, self.skewed = self.skewed, []
        for node in nodes:
            if self.live.is_running(node):
                self.set_offset(node, 0.0)
        return {"targets": nodes, "offset": 0}

    def teardown(self) -> None:
        if self.cluster is not None and (self.skewed or self._strobe is not None):
            self.stop({})
