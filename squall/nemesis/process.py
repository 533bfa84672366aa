"""Process faults: kill (SIGKILL, later restart) and pause (SIGSTOP/SIGCONT).

Both act through the backend (``cluster.kill/start/pause/resume``), so they
work the same on containers and on local processes. A kill is a crash, not a
shutdown: nothing is flushed, and the restart finds the disk as the crash
left it — the restore path is what gets exercised.
"""

from __future__ import annotations

import time
from typing import Any

from squall.history import IN_EFFECT_FOR
from squall.nemesis.base import Fault


class _NodeFault(Fault):
    options = frozenset({"target", "nodes"})
    default_target = "random"

    def __init__(self, target: str = "random") -> None:
        super().__init__()
        self.default_target = target
        self.affected: list[str] = []

    def apply(self, node: str) -> None:
        raise NotImplementedError

    def undo(self, node: str) -> None:
        raise NotImplementedError

    def start(self, params: dict[str, Any], leader: str | None) -> dict[str, Any]:
        nodes = self.pick_nodes(params, leader, self.default_target)
        # A kill returns once Docker saw the container exit, 0.2-0.9 s after the
        # signal on a busy machine: timed from the completion, a leader kill looked
        # recovered in 4 ms. The window starts when the first signal was sent.
        signalled = time.monotonic()
        for node in nodes:
            # Recorded before the call: if the signal lands and the call then
            # raises, teardown must still undo it.
            if node not in self.affected:
                self.affected.append(node)
            self.apply(node)
        return {
            "targets": nodes,
            "leader": leader,
            IN_EFFECT_FOR: round(time.monotonic() - signalled, 4),
        }

    def stop(self, params: dict[str, Any]) -> dict[str, Any]:
        nodes, self.affected = list(self.affected), []
        for node in nodes:
            self.undo(node)
        return {"targets": nodes}

    def teardown(self) -> None:
        if self.cluster is not None and self.affected:
            self.stop({})


class Kill(_NodeFault):
    """SIGKILL the target nodes; ``stop`` starts them again on the same data."""

    kind = "kill"

    def apply(self, node: str) -> None:
        self.live.kill(node)

    def undo(self, node: str) -> None:
        if not self.live.is_running(node):
            self.live.start(node)


class Pause(_NodeFault):
    """SIGSTOP the target nodes: alive but silent (a GC pause, a stuck VM)."""

    kind = "pause"

    def apply(self, node: str) -> None:
        self.live.pause(node)

    def undo(self, node: str) -> None:
        self.live.resume(node)
