"""What the cluster was doing in a span of time, from the status samples.

The samples (``squall.sampler``) are the nodes' own ``/status`` answers taken
through the run. For a span where something went wrong (writes starved, say)
this says, in a sentence, who led and in which terms, whether an election
happened, whether the leader was snapshotting or sending a snapshot, how far
it applied, and which nodes did not answer. It explains; it never judges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

NS = 1_000_000_000


def in_span(samples: Sequence[Mapping[str, Any]], start: int, end: int) -> list[Mapping[str, Any]]:
    return [s for s in samples if start <= s["time"] <= end]


def describe(samples: Sequence[Mapping[str, Any]], start: int, end: int) -> dict[str, Any]:
    """Plain data about ``[start, end]`` (ns of the history clock), with a ``said`` sentence."""
    span = in_span(samples, start, end)
    if not span:
        return {"samples": 0, "said": "no status samples in that span"}
    answered = [s for s in span if s.get("status")]
    silent = sorted({s["node"] for s in span} - {s["node"] for s in answered})
    leaders = sorted(
        {
            (s["status"].get("term", 0), s["node"])
            for s in answered
            if s["status"].get("role") == "leader"
        }
    )
    terms = sorted({s["status"].get("term", 0) for s in answered})
    out: dict[str, Any] = {
        "samples": len(span),
        "leaders": [{"node": n, "term": t} for t, n in leaders],
        "terms": [terms[0], terms[-1]] if terms else [],
        "silent": silent,
        "candidates": sorted(
            {s["node"] for s in answered if s["status"].get("role") == "candidate"}
        ),
    }
    led = [s for s in answered if s["status"].get("role") == "leader"]
    out["snapshotting"] = sorted(
        {s["node"] for s in led if s["status"].get("snapshot_in_progress")}
    )
    out["sending_snapshot"] = sorted(
        {f"{s['node']}->{p}" for s in led for p in s["status"].get("sending_snapshot") or []}
    )
    if led:
        first, last = led[0]["status"], led[-1]["status"]
        secs = max((led[-1]["time"] - led[0]["time"]) / NS, 1e-9)
        out["applied"] = [first.get("applied_index"), last.get("applied_index")]
        lag = [
            int(s["status"].get("commit_index") or 0) - int(s["status"].get("applied_index") or 0)
            for s in led
        ]
        out["apply_lag_max"] = max(lag)
        if isinstance(out["applied"][0], int) and isinstance(out["applied"][1], int):
            out["applied_per_s"] = round((out["applied"][1] - out["applied"][0]) / secs, 1)
    out["said"] = _sentence(out)
    return out


def _sentence(d: Mapping[str, Any]) -> str:
    parts: list[str] = []
    leaders = d["leaders"]
    if not leaders:
        parts.append("no node claimed leadership")
    else:
        who = ", ".join(f"{x['node']} (term {x['term']})" for x in leaders)
        parts.append(f"leader {who}" if len(leaders) == 1 else f"leaders {who}")
    if len(d["terms"]) == 2 and d["terms"][0] != d["terms"][1]:
        parts.append(f"an election (terms {d['terms'][0]} to {d['terms'][1]})")
    if d["candidates"]:
        parts.append(f"{', '.join(d['candidates'])} campaigning")
    if "applied" in d and None not in d["applied"]:
        a, b = d["applied"]
        rate = d.get("applied_per_s")
        parts.append(
            f"applying {a} to {b}"
            + (f" ({rate:g}/s)" if rate is not None else "")
            + (
                f", up to {d['apply_lag_max']} entries behind its commit index"
                if d.get("apply_lag_max", 0) > 0
                else ""
            )
        )
    if d["snapshotting"]:
        parts.append(f"snapshotting on {', '.join(d['snapshotting'])}")
    if d["sending_snapshot"]:
        parts.append(f"sending a snapshot ({', '.join(d['sending_snapshot'])})")
    if d["silent"]:
        parts.append(f"{', '.join(d['silent'])} not answering")
    return "; ".join(parts)
