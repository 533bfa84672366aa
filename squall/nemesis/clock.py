"""Clock skew inside the node's process only, never the host's clock.

Changing the real clock of a container changes the host's (there is one
kernel clock), which broke hosts in Jepsen's docker setup; so the node
process is started with a small preload shim (``clockshim.c``, compiled on
the host once and bind-mounted read-only) that shifts its wall clock by an
offset read from a file on the container's tmpfs. Rewriting that file skews
the node's wall clock within 10 ms. The monotonic clock, sleeps and timed
waits stay real, as with a real NTP step: timers and timeouts keep working,
timestamps lie.

Why not libfaketime: it wraps pthread_cond_timedwait, so every GIL hand-off
of a Python node read its timestamp file (a 10x slowdown of two busy
threads, measured), and the scheduler workload starved from the first
second of any run that merely had this fault configured. The shim fakes
only the wall-clock calls (``clock_gettime`` of the realtime clocks,
``gettimeofday``, ``time``) and re-reads the offset at most every 10 ms.

``bump`` shifts the clock by ``offset`` seconds for the window; ``strobe``
flips it between ``+offset`` and 0 every ``period`` ms until stopped.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from math import isfinite
from pathlib import Path
from typing import Any

from squall.cluster.base import Cluster
from squall.nemesis.base import Fault, NemesisError, positive_seconds
from squall.protocols import NodeNeeds

SHIM_SOURCE = Path(__file__).with_name("clockshim.c")
SHIM_IN_CONTAINER = "/opt/squall-nemesis/squall-clock.so"
# On the container's own tmpfs, never on its root filesystem: the root here
# is fuse-overlayfs, where every open/read/close is a round trip to a
# userspace daemon (55 µs idle, milliseconds on a loaded machine).
OFFSET_FILE = "/dev/shm/squall-clock"
ENV = f"LD_PRELOAD={SHIM_IN_CONTAINER} SQUALL_CLOCK_FILE={OFFSET_FILE}"


def shim_path() -> Path:
    """The compiled shim for this source, built with the host's C compiler once and cached."""
    source = SHIM_SOURCE.read_bytes()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "squall"
    target = cache / f"squall-clock-{hashlib.sha256(source).hexdigest()[:12]}.so"
    if target.is_file():
        return target
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        raise NemesisError(
            "the clock nemesis compiles a small preload shim with the host's C "
            "compiler, and none was found: apt-get install gcc libc6-dev "
            "(./scripts/setup does this)"
        )
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        out = Path(tmp) / target.name
        proc = subprocess.run(
            [cc, "-O2", "-shared", "-fPIC", "-o", str(out), str(SHIM_SOURCE), "-ldl"],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise NemesisError(
                f"compiling the clock shim failed ({cc}, exit {proc.returncode}): "
                f"{proc.stderr.strip()[-500:]}; is libc6-dev installed?"
            )
        out.replace(target)  # atomic: a concurrent run sees the old name or the whole file
    return target


class Clock(Fault):
    kind = "clock"
    options = frozenset({"offset", "target", "nodes", "mode", "period"})

    def __init__(self, max_offset: float = 60.0) -> None:
        super().__init__()
        self.max_offset = max_offset
        self.skewed: list[str] = []
        self._strobe: threading.Thread | None = None
        self._halt = threading.Event()

    def configure(self, cluster: Cluster) -> None:
        # The shim is preloaded into the node process only (the last wrapper),
        # not container-wide: the FUSE daemons and the nemesis's own execs keep
        # the true clock. The offset file is reset first, so a restarted
        # container comes back with an honest clock.
        cluster.spec.need(
            NodeNeeds(
                mounts={str(shim_path()): SHIM_IN_CONTAINER},
                wrapper=(
                    "sh",
                    "-c",
                    f'echo +0 > {OFFSET_FILE} && exec env {ENV} "$@"',
                    "squall-clock",
                ),
                wrap_last=True,
                scratch=(OFFSET_FILE, f"{OFFSET_FILE}.tmp"),
            )
        )

    def node_time(self, node: str) -> float:
        """The node's wall clock as the node sees it (under the same shim)."""
        rc, out = self.live.exec(
            node, ["env", *ENV.split(), "python3", "-c", "import time; print(time.time())"]
        )
        if rc != 0:
            raise NemesisError(f"could not read the clock of {node} (exit {rc}): {out.strip()}")
        return float(out.strip().splitlines()[-1])

    def set_offset(self, node: str, seconds: float) -> None:
        text = f"{seconds:+.3f}"
        rc, out = self.live.exec(
            node,
            ["sh", "-c", f"echo {text} > {OFFSET_FILE}.tmp && mv {OFFSET_FILE}.tmp {OFFSET_FILE}"],
        )
        if rc != 0:
            raise NemesisError(
                f"could not set the clock of {node} (exit {rc}): {out.strip()}; "
                "was the cluster configured with the clock nemesis?"
            )

    @classmethod
    def validate_event(cls, params: Mapping[str, Any], nodes: Sequence[str]) -> None:
        super().validate_event(params, nodes)
        if params.get("mode", "bump") not in ("bump", "strobe"):
            raise NemesisError(f"clock mode {params['mode']!r} must be bump or strobe")
        offset = params.get("offset")
        if offset is not None and (
            isinstance(offset, bool) or not isinstance(offset, int | float) or not isfinite(offset)
        ):
            raise NemesisError(f"clock offset {offset!r} must be a number of seconds")
        if "period" in params:
            positive_seconds(params["period"], "clock period (ms)")

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
            self._strobe = threading.Thread(
                target=self._flip,
                args=(nodes, float(offset), period),
                name="squall-clock-strobe",
                daemon=True,
            )
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
