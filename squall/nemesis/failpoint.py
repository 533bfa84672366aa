"""Failpoint: crash (or stall, or fail) chosen nodes at one named step of their durability path.

A kill lands wherever the process happens to be; a failpoint lands at the one
step a recovery bug hides behind (log fsynced but not yet counted, snapshot
renamed but its directory not yet fsynced...). The system names its points
(``System.failpoints()``) and arms them on a node (``System.failpoint``);
this fault picks the point and the nodes, arms it, *makes the step happen*
where load alone would not, waits until the node reports the hit (or died
saying it fired), and records the point in the history. ``stop`` restarts
every node that crashed and disarms the rest.

Schedule: ``{at: 5s, fault: failpoint, point: wal.append.after-fsync, action: crash,
target: follower, for: 3s}``. ``point: random`` draws one of the system's
points with the run's RNG (the executed timeline pins it). ``action`` is the
system's (aurora: ``crash``, ``error``, ``sleep:<ms>``); a long sleep holds a
node at the step so that another event (a power cut of the same nodes) can
land exactly there. How each step is made to happen:

* ``snapshot.*``, ``wal.compact.*``: the fault asks the target for a snapshot;
* ``restore.*``: armed for the next start, then the target is restarted;
* ``snapshot.install.*``: armed for the next start; the target is stopped, the
  leader writes entries and a snapshot past the target's log, the target is
  started and must be sent the snapshot;
* ``meta.*`` (term and vote): armed (for the next start, on the leader), then
  the leader is restarted, so every node votes in a new term;
* anything else fires under the run's load.

A start in which no target reported the hit names no targets, so a run whose
failpoints never fired is ``unknown`` rather than a pass.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from squall.cluster.base import Cluster
from squall.faults import TARGETS
from squall.nemesis.base import Fault, NemesisError, positive_seconds
from squall.util import WaitTimeout, wait_until

WAIT_S = 15.0  # how long start waits for the point to fire
BOOT_S = 30.0  # how long stop waits for the nodes it restarted to serve
LEADER_WAIT_S = 10.0  # how long a start by role waits for an agreed leader
TARGETS_HERE = (*TARGETS, "follower")
INSTALL = "snapshot.install."
NEXT_START = ("restore.", INSTALL, "meta.")
BY_SNAPSHOT = ("snapshot.", "wal.compact.")


class Failpoint(Fault):
    kind = "failpoint"
    options = frozenset({"target", "nodes", "point", "action", "wait"})

    def __init__(self, target: str = "random", action: str = "crash") -> None:
        super().__init__()
        self.target, self.action = target, action
        self.armed: dict[str, str] = {}  # node -> the point armed there (or that crashed it)
        self._threads: list[threading.Thread] = []
        self._before: dict[str, int] = {}  # node -> crashes its log reported before this arming

    def configure(self, cluster: Cluster) -> None:
        if not all(hasattr(cluster.system, f) for f in ("failpoints", "failpoint")):
            raise NemesisError(
                f"the failpoint nemesis needs a system with failpoints; "
                f"{cluster.system.name} offers none"
            )

    @classmethod
    def validate_event(cls, params: Mapping[str, Any], nodes: Sequence[str]) -> None:
        follower = params.get("target") == "follower"
        super().validate_event(
            {k: v for k, v in params.items() if not follower or k != "target"}, nodes
        )
        if not isinstance(params.get("point", "random"), str) or not params.get("point", "random"):
            raise NemesisError("failpoint point must be a point's name or random")
        if not isinstance(params.get("action", "crash"), str):
            raise NemesisError(
                "failpoint action must be a string (aurora: crash, error, sleep:<ms>)"
            )
        if "wait" in params:
            positive_seconds(params["wait"], "failpoint wait")
        if (
            str(params.get("point", "")).startswith("snapshot.install.")
            and params.get("target") == "leader"
        ):
            raise NemesisError("snapshot.install.* fire on a follower; use target: follower")

    # -- start -----------------------------------------------------------
    def start(self, params: dict[str, Any], leader: str | None) -> dict[str, Any]:
        system = self.live.system
        known: Mapping[str, str] = system.failpoints()  # type: ignore[attr-defined]
        point = str(params.get("point", "random"))
        if point != "random" and point not in known:
            raise NemesisError(f"failpoint {point!r} is unknown; known: {', '.join(sorted(known))}")
        action = str(params.get("action", self.action))
        if leader is None and params.get("target") in ("leader", "follower"):
            # Asked for by role, so worth an election's wait (invoke looked for 1 s):
            # a run's earlier crash may still be electing on a busy machine.
            leader = self.live.leader(timeout=LEADER_WAIT_S)
        nodes = self._targets(params, leader)
        if point == "random":  # one that can fire on these nodes: install needs a follower
            fits = [p for p in sorted(known) if leader not in nodes or not p.startswith(INSTALL)]
            point = self.rng.choice(fits)
        next_start = point.startswith(NEXT_START)
        since = time.time() - 1.0  # log times are the host's wall clock
        self._before = {node: self._said(node, point, since) for node in nodes}
        for node in nodes:
            self.armed[node] = point
            at = (
                "next-start"
                if next_start and (not point.startswith("meta.") or node == leader)
                else "now"
            )
            self._arm(node, point, action, at)
        provoked = self._provoke(point, nodes, leader)
        fired = self._await_hits(
            point, nodes, since, positive_seconds(params.get("wait", WAIT_S), "wait")
        )
        return {
            "targets": sorted(n for n, how in fired.items() if how),
            "armed_on": nodes,
            "leader": leader,
            "point": point,
            "action": action,
            "fired": fired,
            "provoked": provoked,
        }

    def pinned(self, params: Mapping[str, Any], value: Mapping[str, Any]) -> dict[str, Any]:
        out = super().pinned(params, value)
        out["nodes"] = list(value.get("armed_on") or out.get("nodes") or [])
        out.pop("target", None)
        if value.get("point"):
            out["point"] = value["point"]
        return out

    def _targets(self, params: Mapping[str, Any], leader: str | None) -> list[str]:
        if params.get("target") == "follower" and not params.get("nodes"):
            others = sorted(n for n in self.live.nodes if n != leader)
            return [self.rng.choice(others)]
        return self.pick_nodes(
            {k: v for k, v in params.items() if k != "target" or v != "follower"},
            leader,
            self.target,
        )

    def _arm(self, node: str, point: str, action: str, at: str) -> None:
        live = self.live
        got = live.system.failpoint(live.address(node), 5.0, live.spec.secret, point, action, at)  # type: ignore[attr-defined]
        # No answer is no refusal: a crash point under load can fire before the node
        # has sent its reply to the arming call. Whether it fired is decided by the hits.
        if "error" not in got and got.get("status") != 200:
            raise NemesisError(
                f"arming {point} on {node} failed: {got.get('result') or got.get('error')}"
            )

    # -- making the step happen ------------------------------------------
    def _provoke(self, point: str, nodes: list[str], leader: str | None) -> str | None:
        live = self.live
        if point.startswith("restore."):
            for node in nodes:
                live.kill(node)
                live.start(node)
            return "restarted the targets"
        if point.startswith("snapshot.install."):
            return self._provoke_install(nodes, leader)
        if point.startswith("meta."):
            if leader is None:
                raise NemesisError("a meta.* failpoint needs a leader to restart; none is agreed")
            live.kill(leader)
            live.start(leader)
            return f"restarted the leader {leader}"
        if point.startswith(BY_SNAPSHOT):
            for node in nodes:
                self._snapshot_in_background(node)
            return "asked the targets for a snapshot"
        return None

    def _provoke_install(self, nodes: list[str], leader: str | None) -> str:
        live = self.live
        if leader is None or leader in nodes:
            raise NemesisError("snapshot.install.* need a leader that is not a target")
        behind: dict[str, int] = {}
        for node in nodes:
            seen = live.observe(node, 1.0)
            behind[node] = int(seen.applied_index or 0) if seen else 0
            live.kill(node)

        def ahead() -> bool:
            seen = live.observe(leader, 1.0)
            return bool(seen and (seen.applied_index or 0) > max(behind.values()) + 5)

        try:
            wait_until(ahead, 10.0, f"the leader {leader} applying past the stopped targets")
        except WaitTimeout as exc:
            raise NemesisError(f"{exc}: is the run's load writing?") from None
        answer = live.system.snapshot(live.address(leader), 30.0, live.spec.secret)  # type: ignore[attr-defined]
        if answer.get("status") != 200:
            raise NemesisError(f"the leader {leader} would not snapshot: {answer}")
        for node in nodes:
            live.start(node)
        return f"stopped the targets, snapshotted {leader} past them, started them"

    def _snapshot_in_background(self, node: str) -> None:
        # In a thread: a snapshot that reaches a crash or a sleep does not answer.
        live = self.live
        t = threading.Thread(
            target=lambda: live.system.snapshot(live.address(node), 60.0, live.spec.secret),  # type: ignore[attr-defined]
            daemon=True,
            name=f"squall-failpoint-snapshot-{node}",
        )
        t.start()
        self._threads.append(t)

    # -- seeing it fire --------------------------------------------------
    def _await_hits(
        self, point: str, nodes: list[str], since: float, wait: float
    ) -> dict[str, str | None]:
        """node -> "crashed" / "hit" once the point fired there (None where it never did)."""
        fired: dict[str, str | None] = dict.fromkeys(nodes)

        def all_fired() -> bool:
            for node in nodes:
                if fired[node] is None:
                    fired[node] = self._fired(node, point, since)
            return all(fired.values())

        with contextlib.suppress(WaitTimeout):  # the completion names where it never fired
            wait_until(all_fired, wait, f"failpoint {point} firing", every=0.1)
        return fired

    def _said(self, node: str, point: str, since: float) -> int:
        """How often the node's log says the point crashed it (a local log is never cut by since)."""
        return self.live.logs(node, since).count(f"failpoint {point} fired: crash")

    def _fired(self, node: str, point: str, since: float) -> str | None:
        live = self.live
        running = live.is_running(node)
        if self._said(node, point, since) > self._before.get(node, 0):
            # The line is written just before the exit: on a busy machine the process
            # was seen alive after it, and stop then left it down, not restarted.
            return None if running else "crashed"
        if not running:
            return None
        hits = live.system.failpoint_hits(live.address(node), 1.0)  # type: ignore[attr-defined]
        return "hit" if hits and hits.get(point) else None

    # -- stop ------------------------------------------------------------
    def stop(self, params: dict[str, Any]) -> dict[str, Any]:
        armed, self.armed = dict(self.armed), {}
        restarted = []
        for node, point in armed.items():
            if not self.live.is_running(node):
                self.live.start(node)
                restarted.append(node)
            else:  # a crash disarms by itself; anything else stays armed until told
                live = self.live
                live.system.failpoint(live.address(node), 5.0, live.spec.secret, point, "off")  # type: ignore[attr-defined]
        for t in self._threads:
            t.join(60)
        self._threads = []
        return {
            "targets": sorted(armed),
            "restarted": restarted,
            "still_booting": self._booted(restarted),
        }

    def _booted(self, nodes: list[str]) -> list[str]:
        """Waits for restarted nodes to serve (or exit), so the window closes with them back:
        a node that took 20 s to boot on a busy machine was still down when the next event
        crashed the leader, and two of three nodes down looked like a failover failure."""
        waiting = set(nodes)

        def settled() -> bool:
            for node in sorted(waiting):
                if self.live.observe(node, 0.5) or not self.live.is_running(node):
                    waiting.discard(node)
            return not waiting

        with contextlib.suppress(WaitTimeout):  # named in the completion
            wait_until(settled, BOOT_S, "the restarted nodes serving", every=0.2)
        return sorted(waiting)

    def teardown(self) -> None:
        if self.cluster is not None and self.armed:
            self.stop({})
