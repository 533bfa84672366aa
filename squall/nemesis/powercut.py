"""Power cut: the target nodes lose every write they did not fsync, then die.

A ``kill`` (SIGKILL) cannot show a store that forgets to fsync: the kernel's
page cache outlives the process, so the restarted node reads back every
byte it wrote. A power cut does not. Each node's data directory is mounted
through ``squall/nemesis/lazyfs.py`` (the stallfs passthrough plus a record of what
is durable); ``start-power-cut`` tells it to roll the directory back to its
durable state — holding every call first, so the node never sees the
rollback — then SIGKILLs the container. ``stop-power-cut`` starts it again,
on whatever the "disk" kept: the restore path runs on the crash's leftovers.

Schedule: ``{at: 8s, fault: power-cut, target: all, for: 3s}`` (targets as
kill: leader, random, minority, majority, all, or ``nodes: [...]``). The
completion names, per node, what the cut dropped (bytes, files truncated,
names that vanished), so a report shows that data really was lost.

A store that lost unsynced writes may refuse to start on what is left (a
zero-length log file is what ext4 leaves of a log never fsynced). With
``damaged: wipe`` (the default) ``stop-power-cut`` then does what the
store's error tells an operator to do — empty the data dir and restart —
and records it (``refused``: node -> its last log line, ``wiped``), so the
run goes on and the checkers see the lost writes rather than a cluster
that never answers again; ``damaged: leave`` leaves such nodes down.

The container needs ``/dev/fuse`` and ``SYS_ADMIN``, as for disk-stall, and
mfusepy on the host (its module is mounted into the nodes). The FUSE layer
is a superset of stallfs: with disk-stall in the same run it takes
stallfs's place (same control directory), whichever is configured first.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from squall.cluster.base import Cluster, ClusterError
from squall.history import IN_EFFECT_FOR
from squall.nemesis.base import NemesisError
from squall.nemesis.disk import CONTROL, IN_CONTAINER, STALLFS, fuse_needs
from squall.nemesis.process import Kill
from squall.util import WaitTimeout, wait_until

LAZYFS = f"{IN_CONTAINER}/lazyfs.py"
DAMAGED = ("wipe", "leave")  # what stop does with a node that refuses to start on its data
WIPE = "wipe"  # lazyfs.WIPE (not imported: lazyfs needs mfusepy, this module must not)
BOOT_S = 30.0  # how long stop waits for a restarted node to serve or to give up


class PowerCut(Kill):
    """Kill's targets and restart, with the unsynced writes dropped before the kill."""

    kind = "power-cut"
    options = frozenset({"target", "nodes", "damaged"})

    def __init__(self, target: str = "random", damaged: str = "wipe") -> None:
        super().__init__(target)
        if damaged not in DAMAGED:
            raise NemesisError(f"damaged {damaged!r} must be one of {', '.join(DAMAGED)}")
        self.damaged = damaged
        self.dropped: dict[str, dict[str, Any]] = {}
        self._damaged_now = damaged

    def configure(self, cluster: Cluster) -> None:
        # disk-stall may already mount stallfs there: lazyfs does all it does, so it
        # takes stallfs's place (two FUSE layers on one path would unmount each other).
        needs = cluster.spec.needs
        needs[:] = [n for n in needs if STALLFS not in n.wrapper]
        cluster.spec.need(fuse_needs(self.kind, "lazyfs.py"))

    @classmethod
    def validate_event(cls, params: Mapping[str, Any], nodes: Sequence[str]) -> None:
        super().validate_event(params, nodes)
        if params.get("damaged", "wipe") not in DAMAGED:
            raise NemesisError(f"damaged {params['damaged']!r} must be one of {', '.join(DAMAGED)}")

    def start(self, params: dict[str, Any], leader: str | None) -> dict[str, Any]:
        nodes = self.pick_nodes(params, leader, self.default_target)
        self._damaged_now = str(params.get("damaged", self.damaged))
        if self._damaged_now not in DAMAGED:
            raise NemesisError(f"damaged {self._damaged_now!r} must be one of {', '.join(DAMAGED)}")
        self.dropped = {}
        # Every target's disk is rolled back (then answers EIO) before any is
        # killed: a node with a dead disk can no longer write or fsync, so it cannot
        # acknowledge anything the rollback would then silently undo.
        for node in nodes:
            if node not in self.affected:  # recorded first: teardown restarts it
                self.affected.append(node)
        # All cuts at once (each is a few docker execs): "target: all" is one
        # power failure, not a rolling one. Every target is killed even if one
        # cut could not be confirmed: a half-done power cut must still end.
        began = time.monotonic()
        try:
            with ThreadPoolExecutor(len(nodes) or 1, thread_name_prefix="squall-power-cut") as pool:
                self.dropped = dict(zip(nodes, pool.map(self._cut_or_why, nodes), strict=True))
        finally:
            for node in nodes:
                self.live.kill(node)
        # The nodes are down either way, so the window names them all; a cut whose
        # rollback was not confirmed says so rather than hiding the targets.
        unconfirmed = {n: d["error"] for n, d in self.dropped.items() if "error" in d}
        value = {
            "targets": nodes,
            "leader": leader,
            "dropped": self.dropped,
            "bytes_dropped": sum(d.get("bytes_dropped", 0) for d in self.dropped.values()),
            IN_EFFECT_FOR: round(time.monotonic() - began, 4),
        }  # the kills wait for exits
        if unconfirmed:
            value["unconfirmed"] = unconfirmed
        return value

    def _cut_or_why(self, node: str) -> dict[str, Any]:
        try:
            return self.cut(node)
        except (NemesisError, ClusterError) as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}

    def cut(self, node: str, timeout: float = 15.0) -> dict[str, Any]:
        """Cuts the power of ``node``'s disk; returns what lazyfs says it dropped."""
        # Wait for this incarnation's lazyfs to be up ("on"), then ask with a token.
        deadline = time.monotonic() + timeout
        state = [""]

        def says(prefix: str) -> bool:
            state[0] = self._power_state(node)
            return state[0].startswith(prefix)

        with contextlib.suppress(WaitTimeout):  # an old lazyfs is asked anyway
            wait_until(lambda: says("on"), timeout, f"the FUSE layer of {node} up")
        token = f"{node}-{time.monotonic_ns()}"
        script = f"echo cut {token} > {CONTROL}/power.tmp && mv {CONTROL}/power.tmp {CONTROL}/power"
        rc, out = self.live.exec(node, ["sh", "-c", script])
        if rc != 0:
            raise NemesisError(
                f"could not cut the power of {node} (exit {rc}): {out.strip()}; "
                "was the cluster configured with power-cut?"
            )
        try:
            wait_until(
                lambda: says(f"cut {token} "),
                max(0.0, deadline - time.monotonic()),
                f"the power cut of {node}",
            )
        except WaitTimeout:
            raise NemesisError(
                f"the disk of {node} did not report a power cut within {timeout:.0f}s "
                f"(power-state: {state[0].strip()!r}); is lazyfs.py its FUSE layer?"
            ) from None
        return dict(json.loads(state[0].split(" ", 2)[2]))

    def _power_state(self, node: str) -> str:
        if self.live.is_running(node):
            try:
                rc, out = self.live.exec(node, ["cat", f"{CONTROL}/power-state"])
            except ClusterError:
                # It stopped between the two calls: a node whose disk answers EIO exits at
                # once (exit 4). Seen in the matrix: the second cut of a run went unconfirmed.
                rc, out = -1, ""
            if rc == 0:
                return out
        # The node may stop by itself once its disk answers EIO: read the file anyway.
        data = self.live.read_file(node, f"{CONTROL}/power-state")
        return data.decode(errors="replace") if data is not None else ""

    # -- power back on -----------------------------------------------------
    def stop(self, params: dict[str, Any]) -> dict[str, Any]:
        """Restarts the nodes; one that refuses its data is wiped and restarted (damaged: wipe)."""
        nodes, self.affected = list(self.affected), []
        since = time.time() - 1.0  # docker log times are the host's wall clock
        for node in nodes:
            if not self.live.is_running(node):
                self.live.start(node)
        refused = self._refusals(nodes, since)
        value: dict[str, Any] = {"targets": nodes, "refused": refused}
        if refused and self._damaged_now == "wipe":
            # What the store's own error says to do ("remove the data dir to rejoin"):
            # an operator would, and then what the cut lost shows up as lost writes
            # instead of a cluster that never answers again.
            since = time.time() - 1.0
            for node in refused:
                self._flag_wipe(node)
                self.live.start(node)
            value["wiped"] = sorted(refused)
            # Back in service (or refusing again) before the window closes, so the
            # next cut never races a node that is still booting.
            value["refused_after_wipe"] = self._refusals(sorted(refused), since)
        return value

    def _refusals(self, nodes: list[str], since: float) -> dict[str, str]:
        """The restarted nodes that exited refusing their data, with the line that says so."""
        waiting, refused = set(nodes), {}

        def settled() -> bool:
            for node in sorted(waiting):
                if self.live.observe(node, 0.5):
                    waiting.discard(node)
                elif not self.live.is_running(node):
                    waiting.discard(node)
                    said = self._refusal(node, since)
                    if said:
                        refused[node] = said
            return not waiting

        with contextlib.suppress(WaitTimeout):  # still booting: the next step will see
            wait_until(settled, BOOT_S, "the restarted nodes serving or refusing", every=0.2)
        return refused

    def _refusal(self, node: str, since: float) -> str:
        """What the node said when it would not start on its data (the system knows the words)."""
        logs = self.live.logs(node, since)
        tell = getattr(self.live.system, "refusal", None)
        if tell is None:  # a system that says nothing particular: the last thing it said
            lines = [ln.strip() for ln in logs.splitlines() if ln.strip()]
            return f"exited: {lines[-1]}" if lines else "exited"
        return str(tell(logs) or "")

    def _flag_wipe(self, node: str) -> None:
        """Drops lazyfs's wipe flag into the stopped node (the backend can write files of stopped nodes)."""
        self.live.write_file(node, f"{CONTROL}/{WIPE}", b"")
