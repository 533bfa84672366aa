"""What every checker takes and gives back, and how checkers compose.

A checker is any callable ``check(ctx) -> dict`` whose result carries
``valid``: True, False or "unknown". Results are plain data (JSON-ready) so
``results.json`` is just the composed dict.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from squall.history import Op

Valid = bool | str  # True, False or "unknown"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class CheckContext:
    """Everything a checker may look at. Checkers never touch a live cluster."""

    history: list[Op]
    test: Mapping[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None
    # Per node, what the harness collected after the final heal:
    # {"status": {...}, "digest": {...}, "digest_history": [...], "restore": {...}}
    nodes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # The nodes' status answers sampled through the run (squall.sampler), in
    # time order: {"time": ns, "node": id, "status": {...} | None}. They
    # explain a verdict (what the leader was doing); they never decide one.
    samples: Sequence[Mapping[str, Any]] = ()
    # What the system's log says of the request ids its client sent
    # (System.committed; resolution.json): resolves info ops (checkers/resolve.py).
    resolution: Mapping[str, Any] | None = None


Checker = Callable[[CheckContext], dict[str, Any]]


def merge_valid(values: list[Valid]) -> Valid:
    """Worst wins: any False makes False, else any unknown makes unknown."""
    if any(v is False for v in values):
        return False
    if any(v is not True for v in values):
        return UNKNOWN
    return True


def compose(checkers: Mapping[str, Checker]) -> Checker:
    """One checker that runs several and keeps each result under its name.

    A checker that raises is reported as unknown with the error, so one
    broken checker never hides the verdicts of the others.
    """

    def check(ctx: CheckContext) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for name, checker in checkers.items():
            t0 = time.perf_counter()
            try:
                res = dict(checker(ctx))
            except Exception as exc:  # noqa: BLE001 - reported, not swallowed
                res = {"valid": UNKNOWN, "error": f"{type(exc).__name__}: {exc}"}
            res.setdefault("valid", UNKNOWN)
            res["seconds"] = round(time.perf_counter() - t0, 4)
            results[name] = res
        return {"valid": merge_valid([r["valid"] for r in results.values()]), **results}

    return check
