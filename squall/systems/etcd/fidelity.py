"""etcd's fidelity: every member holds the same data at the same revision.

etcd's stores are a deterministic function of the raft log it applied, so
members that applied the log up to one revision must hash equal there. The
3.4 gateway maps ``/v3/maintenance/hash`` to ``Hash``: the whole backend
(every bucket; the consistent index, which is per member, left out), at the
member's current revision, which its answer's header names. (``HashKV`` at a
chosen revision shares that path in 3.4's gateway and is unreachable over
JSON: a ``revision`` in the body is ignored, tried.) So after the final heal
the collector waits until every member reports one revision, with no load
running, asks each for its hash, and writes it with the revision it was
taken at to ``nodes/<n>/final.json``; the checker compares them.

A member restarted after a power cut rebuilt its state from what its disk
kept, plus what the leader sent it since: if that restore went wrong, its
hash differs, and the checker names it as restarted.

Only logs are copied out, not the data directory: etcd preallocates every WAL
segment at 64 MB, and five copies per run would be the run's largest cost.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from squall.checkers.base import UNKNOWN, CheckContext
from squall.cluster.base import Cluster
from squall.util import WaitTimeout, wait_until

QUIESCE_S = 15.0  # a member that is still catching up after the heal gets this long


def _revisions(cluster: Cluster) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for node in cluster.nodes:
        seen = cluster.observe(node, 2.0)
        out[node] = seen.extra.get("revision") if seen is not None else None
    return out


def collect_hashes(
    system: Any, cluster: Cluster, dest: Path, restarts: Mapping[str, int]
) -> dict[str, dict[str, Any]]:
    """Writes ``dest/<node>/final.json`` (status and hashkv at one revision) and the logs."""
    from squall.systems.etcd.system import as_int, post_json

    dest.mkdir(parents=True, exist_ok=True)
    revs: dict[str, int | None] = {}

    def agreed() -> bool:
        revs.update(_revisions(cluster))
        return None not in revs.values() and len(set(revs.values())) == 1

    with contextlib.suppress(WaitTimeout):  # the checker says what did not converge
        wait_until(agreed, QUIESCE_S, "every member at one revision", every=0.2)
    known = [r for r in revs.values() if r is not None]
    at = min(known) if known else None
    out: dict[str, dict[str, Any]] = {}
    for node in cluster.nodes:
        address = cluster.address(node)
        seen = cluster.observe(node, 2.0)
        info: dict[str, Any] = {
            "status": seen.to_json() if seen else None,
            "revision": revs.get(node),
            "restarts": restarts.get(node, 0),
        }
        if at is not None:
            got = post_json(address, "/v3/maintenance/hash", {}, 10.0)
            info["hash"] = (
                {"revision": as_int(got.get("header", {}).get("revision")), "hash": got.get("hash")}
                if isinstance(got, dict) and "hash" in got
                else {"error": "no answer to /v3/maintenance/hash"}
            )
        out[node] = info
        (dest / node).mkdir(parents=True, exist_ok=True)
        (dest / node / "final.json").write_text(json.dumps(info, indent=1, default=str))
    cluster.collect(dest, data=False)
    return out


def check_hashes(ctx: CheckContext) -> dict[str, Any]:
    """valid when every member hashed its data equal at one revision."""
    if not ctx.nodes:
        return {"valid": UNKNOWN, "why": "no member's hash was collected after the run"}
    hashes = {n: i.get("hash") or {} for n, i in sorted(ctx.nodes.items())}
    restarted = sorted(n for n, i in ctx.nodes.items() if i.get("restarts"))
    res: dict[str, Any] = {
        "hashes": hashes,
        "revisions": {n: i.get("revision") for n, i in sorted(ctx.nodes.items())},
        "restarted": restarted,
    }
    missing = sorted(n for n, h in hashes.items() if h.get("hash") is None)
    if missing:
        why = "; ".join(f"{n}: {hashes[n].get('error', 'did not answer')}" for n in missing)
        return {
            **res,
            "valid": UNKNOWN,
            "why": f"no hash at one revision from {', '.join(missing)} ({why}), so "
            "their key spaces could not be compared",
        }
    at_revs = {h["revision"] for h in hashes.values()}
    if len(at_revs) > 1:
        seen = ", ".join(f"{n} at {h['revision']}" for n, h in hashes.items())
        return {
            **res,
            "valid": UNKNOWN,
            "why": f"the members were hashed at different revisions ({seen}): they had not "
            "converged after the heal, so their hashes cannot be compared",
        }
    by_hash: dict[str, list[str]] = {}
    for node, h in hashes.items():
        by_hash.setdefault(str(h["hash"]), []).append(node)
    at = at_revs.pop()
    res["revision"] = at
    if len(by_hash) > 1:
        groups = "; ".join(f"{', '.join(ns)} hash {h}" for h, ns in sorted(by_hash.items()))
        tail = f" (restarted during the run: {', '.join(restarted)})" if restarted else ""
        return {**res, "valid": False, "why": f"at revision {at} members differ: {groups}{tail}"}
    tail = f", restarted members {', '.join(restarted)} included" if restarted else ""
    res["why"] = f"all {len(hashes)} members hash {next(iter(by_hash))} at revision {at}{tail}"
    return {**res, "valid": True}
