"""What the runner gathers from the nodes after the final heal.

Per node, into ``nodes/<node>/``: its log, a copy of its data directory, and
``final.json`` — /status, /digest, /digest/history, and the offline restore
round trip: the copied data directory restored in a fresh process
(``python -m squall.systems.aurora.store.tools digest``), newest valid snapshot plus log tail, which
must give the digest a healthy replica had at that index.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from squall.cluster.base import Cluster


def quiesce(cluster: Cluster, timeout: float = 15.0) -> None:
    """Waits until every live node has applied the same index (or time runs out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        idx = {s.get("applied_index") for s in (cluster.status(n) for n in cluster.nodes) if s}
        if len(idx) == 1:
            return
        time.sleep(0.1)


def collect_nodes(cluster: Cluster, dest: Path, console: Console | None = None,
                  restarts: dict[str, int] | None = None) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    quiesce(cluster)
    live: dict[str, dict[str, Any]] = {}
    for node in cluster.nodes:
        live[node] = {
            "status": cluster.status(node, 2.0),
            "digest": cluster.get_json(node, "/digest", 5.0),
            "digest_history": cluster.get_json(node, "/digest/history", 5.0) or [],
        }
    try:
        cluster.collect(dest, data=True)  # type: ignore[call-arg]
    except TypeError:
        cluster.collect(dest)
    for node, info in live.items():
        info["restore"] = restore_round_trip(dest / node / "data")
        info["restarts"] = (restarts or {}).get(node, 0)
        (dest / node).mkdir(parents=True, exist_ok=True)
        (dest / node / "final.json").write_text(json.dumps(info, indent=1, default=str))
    if console:
        digests = {n: (i["digest"] or {}).get("digest", "?")[:12] for n, i in live.items()}
        console.print(f"final digests: {digests}")


def restore_round_trip(data_dir: Path, timeout: float = 120) -> dict[str, Any] | None:
    if not data_dir.is_dir():
        return None
    proc = subprocess.run([sys.executable, "-m", "squall.systems.aurora.store.tools", "digest", str(data_dir)],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip()[-500:]}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"unreadable output: {proc.stdout[-200:]}"}
