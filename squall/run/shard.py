"""A matrix split across runners: deterministic slices, and the merge that joins them.

The units of a suite are its cases × the seeds asked for, in suite order.
``--shard K/N`` runs slice K of N: units are dealt longest first to the
slice with the least expected time so far (ties to the lower slice), so
every runner computes the same slices from the same suite and the slices
end at about the same time. A unit's expected time is the case's
``expected_s``, else its load time plus ``SETUP_S``: what a run costs
beyond its load (start, heal, collect, check), measured on docker.

A shard's summary carries what a merge must check before it may join
anything: the suite's fingerprint (its file and every schedule it names),
the code's fingerprint (every source file of the suite), the seeds, and
which slice of how many it is. ``merge`` refuses summaries that differ in
any of these, or a set of slices with one missing or twice, since a merged
table that silently lacked a slice would be a green that checked less than
it says.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import squall
from squall.run import config as cfgmod

SETUP_S = 20.0


@dataclass(frozen=True, kw_only=True)
class Slice:
    k: int
    n: int

    def __str__(self) -> str:
        return f"{self.k}/{self.n}"


def parse_slice(text: str) -> Slice:
    k, sep, n = text.partition("/")
    try:
        got = Slice(k=int(k), n=int(n))
    except ValueError:
        got = None
    if not sep or got is None or not 1 <= got.k <= got.n:
        raise cfgmod.ConfigError(f"--shard {text!r}: write K/N with 1 <= K <= N, e.g. --shard 1/4")
    return got


def expected_seconds(options: Mapping[str, Any], expected_s: float | None = None) -> float:
    if expected_s is not None:
        return float(expected_s)
    limit = options.get("time_limit", cfgmod.Test.time_limit)
    return float(cfgmod.normalize({"time_limit": limit})["time_limit"]) + SETUP_S


def deal(costs: Sequence[float], n: int) -> list[list[int]]:
    """Unit indexes per slice: longest first onto the least loaded slice (LPT), each in order."""
    loads = [0.0] * n
    slices: list[list[int]] = [[] for _ in range(n)]
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        target = min(range(n), key=lambda s: (loads[s], s))
        loads[target] += costs[i]
        slices[target].append(i)
    return [sorted(s) for s in slices]


# -- fingerprints ----------------------------------------------------------------
def suite_fingerprint(suite: Path, schedules: Sequence[str]) -> str:
    """The suite's file and the schedules its cases name, by content (paths differ per runner)."""
    h = hashlib.sha256(suite.read_bytes())
    for path in sorted(set(schedules)):
        h.update(Path(path).name.encode() + b"\0" + Path(path).read_bytes())
    return h.hexdigest()[:16]


def code_fingerprint() -> str:
    """The suite's own sources, by content: two checkouts of one commit agree."""
    root = Path(squall.__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


# -- merging ---------------------------------------------------------------------
def load_summaries(paths: Sequence[str | Path]) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for p in map(Path, paths):
        try:
            data = json.loads(p.read_text())
            data["rows"], data["fingerprint"]  # noqa: B018 - both must be there
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise cfgmod.ConfigError(
                f"{p} is not a shard summary ({type(exc).__name__}: {exc}); give the "
                "store/matrix/<time>.json files that squall matrix --shard wrote"
            ) from None
        out.append((p, data))
    if not out:
        raise cfgmod.ConfigError("squall matrix merge needs the summaries of the shards")
    return out


def check_joinable(summaries: Sequence[tuple[Path, dict[str, Any]]]) -> int:
    """Refuses summaries that do not make one whole matrix; returns the number of slices."""
    (first_path, first), *rest = summaries
    for key, what in (
        ("suite", "suites"),
        ("code", "code versions"),
        ("seeds", "seed lists"),
    ):
        for path, other in rest:
            if other["fingerprint"].get(key) != first["fingerprint"].get(key):
                raise cfgmod.ConfigError(
                    f"refusing to merge: {first_path} and {path} come from different {what} "
                    f"({first['fingerprint'].get(key)} vs {other['fingerprint'].get(key)}); "
                    "run every shard of one suite from one commit with the same seeds"
                )
    slices = [Slice(**(s.get("shard") or {"k": 1, "n": 1})) for _, s in summaries]
    n = slices[0].n
    if any(s.n != n for s in slices):
        raise cfgmod.ConfigError(
            f"refusing to merge slices of different splits: {', '.join(map(str, slices))}"
        )
    seen = [s.k for s in slices]
    twice = sorted({k for k in seen if seen.count(k) > 1})
    missing = sorted(set(range(1, n + 1)) - set(seen))
    if twice or missing:
        raise cfgmod.ConfigError(
            "refusing to merge: "
            + "; ".join(
                ([f"shard {', '.join(f'{k}/{n}' for k in missing)} missing"] if missing else [])
                + ([f"shard {', '.join(f'{k}/{n}' for k in twice)} given twice"] if twice else [])
            )
            + "; give each shard's summary once"
        )
    return n


def relocated(run_dir: str, summary: Path, store: str | None) -> str:
    """A row's run directory where this machine has it: as written, or under the summary's store.

    A CI merge job downloads each runner's store as an artifact; the
    absolute path the runner wrote is then gone, its place under the store is not.
    """
    if run_dir == "-" or Path(run_dir).exists() or not store:
        return run_dir
    try:
        rel = Path(run_dir).relative_to(store)
    except ValueError:
        return run_dir
    here = summary.resolve().parent.parent / rel
    return str(here) if here.exists() else run_dir
