"""Which of its clients' request ids the store's log holds (System.committed).

Every kv write the store's client sends carries a request id (client.py);
the store logs it with the entry and its state machine keeps it, with the
result, in the ``requests`` table. The offline restore of each node's
collected data directory (collect.py, store/tools.py) lists the ids the
restored state applied, with the log index of those still in the log.

The most advanced restore is the answer. It is *complete* (an id missing
from it was never committed) only when nothing says otherwise: it reaches
the highest commit index any node reported after the final heal, some node
led then, and its digest is the one that node computed live at that index
(a restore that differs from the live state, as the lossy-snapshot bug makes
it, vouches for nothing). Otherwise the ids it holds still count as
committed, and the missing ones stay undecided.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def committed_requests(nodes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    restored = {
        n: info["restore"]
        for n, info in nodes.items()
        if isinstance(info.get("restore"), Mapping)
        and isinstance(info["restore"].get("requests"), list)
        and isinstance(info["restore"].get("index"), int)
    }
    if not restored:
        return None  # a run from before request ids were collected: nothing to say
    best = max(sorted(restored), key=lambda n: restored[n]["index"])
    got = restored[best]
    statuses = [i["status"] for i in nodes.values() if isinstance(i.get("status"), Mapping)]
    commits = [s["commit_index"] for s in statuses if isinstance(s.get("commit_index"), int)]
    live = nodes[best].get("digest")
    why = None
    if not commits:
        why = "no node answered /status after the final heal: nothing says how far the log was committed"
    elif got["index"] < max(commits):
        why = (
            f"the most advanced data directory ({best}) restores to index {got['index']}, "
            f"short of the commit index {max(commits)} a node reported"
        )
    elif not any(s.get("role") == "leader" for s in statuses):
        why = "no node led after the final heal, so entries may still have been committed"
    elif not (
        isinstance(live, Mapping)
        and live.get("index") == got["index"]
        and live.get("digest") == got.get("digest")
    ):
        why = f"{best}'s restored state is not the state it reported live at index {got['index']}"
    return {
        "source": f"{best}'s data directory restored offline (applied index {got['index']})",
        "complete": why is None,
        "why": why,
        "committed": {rid: [index, took] for rid, index, took in got["requests"]},
    }
