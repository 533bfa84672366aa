"""The leftover sweep: what runners killed outright (SIGKILL, a lost machine session) left.

Containers, networks, volumes and their config directories (``squall.cluster.
cleanup``), the Toxiproxy servers of the link fault (``squall.nemesis.cleanup``)
and orphaned FUSE daemons: each is removed only once its owner is dead, judged by
the lock the owner held (``squall.owner``), so a live run of another user, or of
CI in another PID namespace, is never touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the SDK is imported by the sweep's own work, not by its importers
    from docker.client import DockerClient


def sweep_leftovers(client: DockerClient | None = None) -> list[str]:
    """Removes every leftover of a dead owner; returns what was removed, by name."""
    from squall.cluster.cleanup import cleanup_leftovers
    from squall.nemesis.cleanup import cleanup

    removed = [f"toxiproxy server pid {p}" for p in cleanup(containers=False).toxiproxy_pids]
    try:
        removed += cleanup_leftovers(client)
    except Exception:  # noqa: BLE001 - no Docker engine here: no containers to sweep
        pass
    return removed
