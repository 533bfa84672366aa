"""Hand-written histories and a synthetic run directory for the checker tests.

Times are given in seconds and stored as ns, as the history contract says.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import yaml

from squall.checkers.base import CheckContext, compose
from squall.checkers.failover import check_failover
from squall.checkers.perf import check_perf
from squall.checkers.starvation import check_starvation
from squall.checkers.stats import check_stats
from squall.history import NEMESIS, Op, reindex, write_history
from squall.systems.aurora.fidelity import check_fidelity

NS = 1_000_000_000


class Hist:
    """Builds a well-formed history: each op is an invoke plus its completion."""

    def __init__(self) -> None:
        self._events: list[tuple[float, int, Op]] = []
        self._seq = 0

    def _add(self, t: float, op: Op) -> None:
        self._events.append((t, self._seq, op.with_(time=int(t * NS))))
        self._seq += 1

    def op(
        self,
        process: int,
        f: str,
        value: Any,
        t0: float,
        t1: float | None,
        outcome: str = "ok",
        result: Any = None,
        node: str | None = "n1",
    ) -> Hist:
        """One client op; ``t1=None`` leaves it open (never completed)."""
        self._add(t0, Op(process=process, type="invoke", f=f, value=value, node=node))
        if t1 is not None:
            done = value if result is None else result
            self._add(t1, Op(process=process, type=outcome, f=f, value=done, node=node))
        return self

    def fault(
        self,
        kind: str,
        t0: float,
        t1: float | None,
        leader: str | None = "n1",
        targets: list[str] | None = None,
        **extra: Any,
    ) -> Hist:
        """A nemesis fault active from t0 to t1 (None: never stopped)."""
        value = {"targets": targets if targets is not None else [leader], "leader": leader, **extra}
        self._add(t0, Op(process=NEMESIS, type="invoke", f=f"start-{kind}", value=None))
        self._add(t0, Op(process=NEMESIS, type="ok", f=f"start-{kind}", value=value))
        if t1 is not None:
            self._add(t1, Op(process=NEMESIS, type="invoke", f=f"stop-{kind}", value=None))
            self._add(t1, Op(process=NEMESIS, type="ok", f=f"stop-{kind}", value=value))
        return self

    def build(self) -> list[Op]:
        return reindex(op for _, _, op in sorted(self._events, key=lambda e: (e[0], e[1])))


def ctx(h: Hist | list[Op], **test: Any) -> CheckContext:
    history = h.build() if isinstance(h, Hist) else h
    return CheckContext(history=history, test={"nodes": ["n1", "n2", "n3"], **test})


NODES = ["n1", "n2", "n3", "n4", "n5"]


def realistic_history(seed: int = 7, span: float = 30.0) -> list[Op]:
    """A register run: 5 clients on 3 keys, a leader kill and a partition."""
    rng = random.Random(seed)
    h = Hist()
    h.fault("kill", 8.0, 12.0, leader="n1", targets=["n1"])
    h.fault(
        "partition",
        18.0,
        23.0,
        leader="n2",
        targets=["n2", "n3"],
        grudge={
            "n2": ["n1", "n4", "n5"],
            "n3": ["n1", "n4", "n5"],
            "n1": ["n2", "n3"],
            "n4": ["n2", "n3"],
            "n5": ["n2", "n3"],
        },
    )
    h.fault("link", 25.0, 27.0, leader="n4", targets=["n5"])
    for worker in range(5):
        t, process = 0.05 * worker, worker
        while t < span:
            f = rng.choice(["read", "read", "write", "cas"])
            key = rng.randrange(3)
            dead = 8.0 <= t < 9.3 or 18.0 <= t < 19.0
            lat = rng.uniform(0.3, 1.2) if dead else rng.lognormvariate(-5.0, 0.6)
            outcome = (
                "info"
                if dead and rng.random() < 0.5
                else ("fail" if dead or rng.random() < 0.05 else "ok")
            )
            v = rng.randrange(5)
            value = (
                [key, None]
                if f == "read"
                else [key, [v, rng.randrange(5)]]
                if f == "cas"
                else [key, v]
            )
            result = [key, rng.randrange(5)] if f == "read" and outcome == "ok" else None
            h.op(process, f, value, t, t + lat, outcome, result, node=NODES[worker])
            if outcome == "info":
                process += 5  # an info'd process is never reused (contracts §1)
            t += lat + rng.uniform(0.01, 0.05)
    return h.build()


def node_digests(mismatch: bool = False) -> dict[str, dict[str, Any]]:
    """What the runner collects per node; ``mismatch`` corrupts n3's restore."""
    nodes: dict[str, dict[str, Any]] = {}
    for n in NODES:
        hist = [
            {"event": "apply", "index": i, "digest": f"d{i:04d}" * 8, "time": i}
            for i in range(100, 1100, 100)
        ]
        if n == "n1":
            bad = "bad0" * 16 if mismatch else "d0700" * 8
            hist.append({"event": "restore", "index": 700, "digest": bad, "time": 700})
        nodes[n] = {
            "digest": {"index": 1000, "digest": "d1000" * 8},
            "digest_history": hist,
            "restarts": 1 if n == "n1" else 0,
            "restore": {"index": 1000, "digest": "d1000" * 8},
        }
    return nodes


def synthetic_run_dir(run_dir: Path, invalid: bool = True) -> Path:
    """A run directory as the runner leaves it: config, history, results, plots."""
    run_dir.mkdir(parents=True, exist_ok=True)
    history = realistic_history()
    write_history(run_dir / "history.jsonl", history)
    test = {
        "name": "register-kill-partition",
        "seed": 7,
        "workload": "register",
        "nemesis": ["kill", "partition", "link"],
        "nodes": NODES,
        "time_limit": 30,
        "failover_bound": 2.0,
        "starvation_bound": 1.0,
        "snapshot_codec": "dump",
        "command": [
            "squall",
            "run",
            "--workload",
            "register",
            "--nemesis",
            "kill,partition,link",
            "--seed",
            "7",
            "--time-limit",
            "30",
        ],
    }
    (run_dir / "test.yaml").write_text(yaml.safe_dump(test, sort_keys=False))
    checker = compose(
        {
            "perf": check_perf,
            "stats": check_stats,
            "failover": check_failover,
            "fidelity": check_fidelity,
            "starvation": check_starvation,
        }
    )
    results = checker(
        CheckContext(
            history=history, test=test, run_dir=run_dir, nodes=node_digests(mismatch=invalid)
        )
    )
    if invalid:
        results["linear"] = {
            "valid": False,
            "why": "linearizability failed on key 2: a read "
            "of 3 after a write of 4 was acknowledged",
            "key": 2,
        }
        results["valid"] = False
        (run_dir / "linear.html").write_text("<html><body>linear</body></html>")
    (run_dir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    return run_dir
