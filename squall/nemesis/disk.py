"""Disk stalls (and fsync failures), optionally while a snapshot is written.

How: a FUSE passthrough (``squall/nemesis/stallfs.py``, on mfusepy and Debian's
libfuse3) is mounted over the node's data directory when its container
starts; the nemesis flips its mode through a control file. Chosen over the
alternatives tried on this machine because it is the only one that

* **blocks rather than fails** every write and fsync of exactly one node,
  for exactly as long as asked, and releases them all at once;
* works on fuse-overlayfs storage and cgroup v1: the blkio throttle does not
  see buffered writeback under cgroup v1 (so fsync would not stall) and
  needs the data on a real block device; ``fsfreeze`` needs a loop-mounted
  ext4 per node and a privileged container;
* can also make fsync fail with EIO, the other half of a sick disk, and
  fill the disk (``mode: enospc``: writes and creations fail with ENOSPC).

The container needs ``/dev/fuse`` and ``SYS_ADMIN`` (no privileged mode).
mfusepy is not in Debian, and the image is built without a registry, so it
is neither baked in nor downloaded at run time: it is a normal Python
dependency of the suite on the host, and its single module file is
bind-mounted read-only next to ``stallfs.py``. Every write of the node then
crosses a Python FUSE daemon: slower, so enable this nemesis only for the
runs that use it.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from squall.cluster.base import Cluster, ClusterError
from squall.nemesis.base import Fault, NemesisError, positive_seconds
from squall.protocols import NodeNeeds
from squall.util import WaitTimeout, wait_until

CONTROL = "/run/squall-stallfs"
IN_CONTAINER = "/opt/squall-nemesis"
STALLFS = f"{IN_CONTAINER}/stallfs.py"
MODES = ("stall", "eio", "enospc")


def mfusepy_path(fault: str) -> str:
    """The host's mfusepy module file (mounted into the nodes beside the FUSE layer)."""
    found = importlib.util.find_spec("mfusepy")
    if found is None or found.origin is None:
        raise NemesisError(
            f"the {fault} nemesis needs mfusepy on the host (its module is "
            "mounted into the nodes): pip install mfusepy"
        )
    return found.origin


def fuse_needs(fault: str, layer: str) -> NodeNeeds:
    """A FUSE ``layer`` (a script beside this module) mounted over every node's data directory."""
    here = Path(__file__).parent
    return NodeNeeds(
        devices=("/dev/fuse",),
        capabilities=("SYS_ADMIN",),
        mounts={
            mfusepy_path(fault): f"{IN_CONTAINER}/mfusepy.py",
            str(here / "stallfs.py"): STALLFS,
            str(here / layer): f"{IN_CONTAINER}/{layer}",
        },
        wrapper=(
            "python3",
            f"{IN_CONTAINER}/{layer}",
            "--mount",
            "{data_dir}",
            "--control",
            CONTROL,
            "--",
        ),
        scratch=(CONTROL,),
    )


class DiskStall(Fault):
    kind = "disk-stall"
    options = frozenset({"target", "nodes", "mode", "snapshot", "seconds", "wait"})

    def __init__(
        self, snapshot: str | bool = "trigger", mode: str = "stall", target: str = "leader"
    ) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.mode = mode
        self.target = target
        self.stalled: list[str] = []
        self.snapshots: dict[str, dict[str, Any]] = {}
        self._threads: list[threading.Thread] = []

    def configure(self, cluster: Cluster) -> None:
        if any(f"{IN_CONTAINER}/lazyfs.py" in n.wrapper for n in cluster.spec.needs):
            return  # power-cut's lazyfs (a superset of stallfs) already serves this data dir
        cluster.spec.need(fuse_needs(self.kind, "stallfs.py"))

    # -- the control file -------------------------------------------------
    def set_mode(self, node: str, mode: str, timeout: float = 10.0) -> None:
        """Switches ``node``'s stallfs to ``mode`` and waits until it holds."""
        script = f"echo {mode} > {CONTROL}/mode.tmp && mv {CONTROL}/mode.tmp {CONTROL}/mode"
        rc, out = self.live.exec(node, ["sh", "-c", script])
        if rc != 0:
            raise NemesisError(
                f"could not set the disk of {node} to {mode} (exit {rc}): "
                f"{out.strip()}; was the cluster configured with disk-stall?"
            )
        seen = [""]

        def died() -> bool:
            # A store that will not write past a failed fsync or a full disk (etcd,
            # Squall's own store) stops itself at once, often before the state is
            # read back: the mode took.
            if mode != "pass" and not self.live.is_running(node):
                seen[0] = "the node stopped itself"
                return True
            return False

        def holds() -> bool:
            if died():
                return True
            try:
                rc, seen[0] = self.live.exec(node, ["cat", f"{CONTROL}/state"])
            except ClusterError:
                if died():
                    return True
                raise
            return rc == 0 and seen[0].split()[:1] == [mode]

        try:
            wait_until(holds, timeout, f"the disk of {node} switching to {mode}")
        except WaitTimeout:
            raise NemesisError(
                f"the disk of {node} did not switch to {mode} within {timeout:.0f}s "
                f"(state: {seen[0].strip()!r}); is stallfs running in the container?"
            ) from None

    @classmethod
    def validate_event(cls, params: Mapping[str, Any], nodes: Sequence[str]) -> None:
        super().validate_event(params, nodes)
        if params.get("mode", "stall") not in MODES:
            raise NemesisError(
                f"disk-stall mode {params['mode']!r} must be one of {', '.join(MODES)}"
            )
        if params.get("snapshot", False) not in ("trigger", "wait", False, None):
            raise NemesisError(f"snapshot {params['snapshot']!r} must be trigger, wait or false")
        for key in ("seconds", "wait"):
            if key in params:
                positive_seconds(params[key], f"disk-stall {key}")

    # -- start / stop -----------------------------------------------------
    def start(self, params: dict[str, Any], leader: str | None) -> dict[str, Any]:
        mode = params.get("mode", self.mode)
        if mode not in MODES:
            raise NemesisError(f"disk-stall mode {mode!r} must be one of {', '.join(MODES)}")
        snapshot = params.get("snapshot", self.snapshot)
        if snapshot not in ("trigger", "wait", False, None):
            raise NemesisError(f"snapshot {snapshot!r} must be trigger, wait or false")
        if snapshot == "trigger" and not hasattr(self.live.system, "snapshot"):
            raise NemesisError(
                f"snapshot: trigger needs a system that can be told to snapshot; "
                f"{self.live.system.name} cannot (use snapshot: false)"
            )
        nodes = self.pick_nodes(params, leader, self.target)
        if snapshot == "wait":
            nodes = self._await_snapshot(nodes, float(params.get("wait", 30)))
        for node in nodes:
            self.stalled.append(node)
            self.set_mode(node, mode)
        value: dict[str, Any] = {
            "targets": nodes,
            "leader": leader,
            "mode": mode,
            "seconds": params.get("seconds"),
            "snapshot": snapshot or None,
        }
        if snapshot == "trigger":
            self.snapshots = {}
            for node in nodes:
                t = threading.Thread(
                    target=self._snapshot, args=(node,), daemon=True, name=f"squall-snapshot-{node}"
                )
                t.start()
                self._threads.append(t)
            value["in_progress"] = self._await_snapshot(nodes, 5.0, strict=False)
        return value

    def _snapshot(self, node: str) -> None:
        started = time.monotonic()
        live = self.live
        answer = dict(live.system.snapshot(live.address(node), 300, live.spec.secret))  # type: ignore[attr-defined]
        self.snapshots[node] = {
            **answer,
            "took_s": round(time.monotonic() - started, 3),
            "returned": time.monotonic(),
        }

    def _await_snapshot(self, nodes: list[str], timeout: float, strict: bool = True) -> list[str]:
        """The nodes that report snapshot_in_progress within ``timeout``."""

        def busy_now() -> list[str]:
            return [
                n
                for n in nodes
                if (o := self.live.observe(n, 0.5)) and o.extra.get("snapshot_in_progress")
            ]

        try:
            busy = wait_until(busy_now, timeout, "a snapshot in progress", every=0.02)
        except WaitTimeout:
            busy = []
        if strict and not busy:
            raise NemesisError(
                f"no snapshot started on {', '.join(nodes)} within {timeout:.0f}s; "
                "use snapshot: trigger to start one"
            )
        return busy

    def _stopped(self, node: str) -> bool:
        return not self.live.is_running(node)

    def stop(self, params: dict[str, Any]) -> dict[str, Any]:
        nodes, self.stalled = self.stalled, []
        released = time.monotonic()
        restarted = []
        for node in nodes:
            if self.live.is_running(node):
                try:
                    self.set_mode(node, "pass")
                    continue
                except (NemesisError, ClusterError) as exc:
                    # It was stopping itself as we asked (exec exit 137): restart it
                    # like the others, or the nodes after it would stay down too.
                    try:
                        wait_until(partial(self._stopped, node), 5.0, f"{node} exiting")
                    except WaitTimeout:
                        raise exc from None
            # It stopped itself: a store that will not trust a failed fsync exits (eio)
            # or a write (enospc). A supervisor restarts it on the healed disk; so does this.
            self.live.write_file(node, f"{CONTROL}/mode", b"pass\n")
            self.live.start(node)
            restarted.append(node)
        for t in self._threads:
            t.join(60)
        self._threads = []
        value: dict[str, Any] = {"targets": nodes}
        if restarted:
            value["restarted"] = restarted
        if self.snapshots:
            value["snapshots"] = {
                n: {k: v for k, v in s.items() if k != "returned"}
                | {"after_release_s": round(s["returned"] - released, 3)}
                for n, s in self.snapshots.items()
            }
        return value

    def teardown(self) -> None:
        if self.cluster is not None and self.stalled:
            self.stop({})
