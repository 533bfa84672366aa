"""What the runner gathers from the nodes after the final heal.

Per node, into ``nodes/<node>/``: its log, a copy of its data directory, and
``final.json`` — /status, /digest, /digest/history, and the offline restore
round trip: the copied data directory restored in a fresh process
(``python -m squall.systems.aurora.store.tools digest``), newest valid snapshot plus log tail, which
must give the digest a healthy replica had at that index.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from squall.cluster.base import Cluster
from squall.systems.aurora.system import get_json
from squall.util import WaitTimeout, wait_until


def quiesce(cluster: Cluster, timeout: float = 15.0) -> None:
    """Waits until every live node has applied the same index (or time runs out)."""

    def same() -> bool:
        # A cold standby applies nothing (store/standby.py): there is nothing it catches up on.
        seen = [o for n in cluster.nodes if (o := cluster.observe(n))]
        live = [o for o in seen if (o.extra.get("standby") or {}).get("state") != "standby"]
        return len({o.applied_index for o in live}) == 1

    with contextlib.suppress(WaitTimeout):
        wait_until(same, timeout, "every node at the same applied index", every=0.1)


def collect_nodes(
    cluster: Cluster, dest: Path, restarts: Mapping[str, int] | None = None
) -> dict[str, dict[str, Any]]:
    """Writes ``dest/<node>/final.json`` (and logs, data) for every node; returns what it wrote."""
    dest.mkdir(parents=True, exist_ok=True)
    quiesce(cluster)
    live: dict[str, dict[str, Any]] = {}
    for node in cluster.nodes:
        address = cluster.address(node)
        live[node] = {
            "status": get_json(address, "/status", 2.0),
            "digest": get_json(address, "/digest", 5.0),
            "digest_history": get_json(address, "/digest/history", 5.0) or [],
        }
    cluster.collect(dest, data=True)
    for node, info in live.items():
        info["restore"] = restore_round_trip(dest / node / "data")
        info["restarts"] = (restarts or {}).get(node, 0)
        (dest / node).mkdir(parents=True, exist_ok=True)
        (dest / node / "final.json").write_text(json.dumps(info, indent=1, default=str))
    return live


def restore_round_trip(data_dir: Path, timeout: float = 120) -> dict[str, Any] | None:
    if not data_dir.is_dir():
        return None
    proc = subprocess.run(
        [sys.executable, "-m", "squall.systems.aurora.store.tools", "digest", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip()[-500:]}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"unreadable output: {proc.stdout[-200:]}"}
