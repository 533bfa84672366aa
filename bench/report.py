"""Speed of the non-linearizability checkers and the report on a long history.

    python bench/report.py [--ops 100000] [--faults 40] [--seed 1]

Builds a seeded synthetic set-workload history (concurrent adds with a fault
every few seconds, one final read), then times stats, set, failover,
starvation, perf (two PNGs) and write_report, each once. Prints figures; the
last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from squall.checkers.base import CheckContext  # noqa: E402
from squall.checkers.failover import check_failover  # noqa: E402
from squall.checkers.perf import check_perf  # noqa: E402
from squall.checkers.sets import check_set  # noqa: E402
from squall.checkers.starvation import check_starvation  # noqa: E402
from squall.checkers.stats import check_stats  # noqa: E402
from squall.history import NEMESIS, Op, reindex, write_history  # noqa: E402
from squall.report.run_page import write_report  # noqa: E402

NS = 1_000_000_000
NODES = ["n1", "n2", "n3", "n4", "n5"]


def history(n_ops: int, n_faults: int, seed: int, workers: int = 10) -> list[Op]:
    rng = random.Random(seed)
    events: list[tuple[int, int, Op]] = []
    seq = 0

    def add(t: float, op: Op) -> None:
        nonlocal seq
        events.append((int(t * NS), seq, op.with_(time=int(t * NS))))
        seq += 1

    present: list[int] = []  # what a correct store holds at the end: all but failed adds
    per_worker = n_ops // workers
    span = per_worker * 0.012
    for w in range(workers):
        t, process = 0.001 * w, w
        for i in range(per_worker):
            lat = rng.lognormvariate(-5.5, 0.7)
            outcome = "ok" if rng.random() < 0.95 else rng.choice(["fail", "info"])
            elem = i * workers + w
            add(t, Op(process=process, type="invoke", f="add", value=elem))
            add(t + lat, Op(process=process, type=outcome, f="add", value=elem))
            process += workers if outcome == "info" else 0
            if outcome != "fail":
                present.append(elem)
            t += lat + 0.002
    for k in range(n_faults):
        start = span * (k + 0.2) / n_faults
        value = {"targets": [NODES[k % 5]], "leader": NODES[k % 5]}
        for f, at in (("start-kill", start), ("stop-kill", start + span / n_faults / 2)):
            add(at, Op(process=NEMESIS, type="invoke", f=f))
            add(at, Op(process=NEMESIS, type="ok", f=f, value=value))
    add(span + 1, Op(process=10_000, type="invoke", f="read"))
    add(span + 1.1, Op(process=10_000, type="ok", f="read", value=sorted(present)))
    return reindex(op for _, _, op in sorted(events, key=lambda e: (e[0], e[1])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ops", type=int, default=100_000)
    ap.add_argument("--faults", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    ops = history(args.ops, args.faults, args.seed)
    figures: dict[str, Any] = {"ops": args.ops, "history_lines": len(ops), "faults": args.faults}
    with tempfile.TemporaryDirectory(prefix="squall-bench-report-") as tmp:
        run_dir = Path(tmp)
        test = {
            "name": "bench-report",
            "seed": args.seed,
            "nodes": NODES,
            "command": ["python", "bench/report.py", "--seed", str(args.seed)],
        }
        ctx = CheckContext(history=ops, test=test, run_dir=run_dir)
        results: dict[str, Any] = {}
        for name, checker in (
            ("stats", check_stats),
            ("set", check_set),
            ("failover", check_failover),
            ("starvation", check_starvation),
            ("perf", check_perf),
        ):
            t0 = time.perf_counter()
            results[name] = checker(ctx)
            figures[f"{name}_s"] = round(time.perf_counter() - t0, 3)
            print(f"{name:>11}: {figures[f'{name}_s']:.3f} s  valid={results[name]['valid']}")
        write_history(run_dir / "history.jsonl", ops)
        (run_dir / "results.json").write_text(json.dumps({"valid": True, **results}, default=str))
        (run_dir / "test.yaml").write_text(json.dumps(test))  # JSON is YAML
        t0 = time.perf_counter()
        page = write_report(run_dir)
        figures["report_s"] = round(time.perf_counter() - t0, 3)
        figures["report_bytes"] = page.stat().st_size
        print(f"     report: {figures['report_s']:.3f} s, {figures['report_bytes'] / 1e6:.2f} MB")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
