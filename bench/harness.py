"""How many ops/s the harness records against a 3-member etcd with no faults, and its CPU.

    python bench/harness.py [--concurrency 10 30] [--seconds 20]

etcd answers a put in about a millisecond on loopback, so with the rate
unthrottled (``--rate 0``) the harness — workers, history writer, sampler,
one Python process under one GIL — is what limits the rate. For each
concurrency this runs ``squall run --system etcd --nemesis none --rate 0``
and, between the runner's "load for" and "healing" lines, reads the runner's
CPU time (/proc/<pid>/stat, every thread) and the machine's (/proc/stat):
recorded ops/s, the runner's CPU microseconds per op, and its share of the
machine. The machine is shared, so the machine's busy share is printed too:
the figures of one invocation are comparable with each other, not with
another day's. Ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """Seconds of CPU the process (all its threads) has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / TICK, sum(values) / TICK


def one(concurrency: int, seconds: float, store: str) -> dict[str, Any]:
    argv = [
        sys.executable, "-m", "squall.cli", "run", "--system", "etcd", "--workload", "register",
        "--nemesis", "none", "--nodes", "3", "--rate", "0", "--concurrency", str(concurrency),
        "--time-limit", f"{seconds:g}", "--store", store, "--seed", "1",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    marks: dict[str, tuple[float, float, float, float]] = {}
    run_dir = ""
    for line in proc.stdout:
        if "→ " in line and not run_dir:
            run_dir = line.split("→ ", 1)[1].strip()
        for mark, text in (("start", "load for"), ("end", "healing every fault")):
            if text in line and mark not in marks:
                marks[mark] = (time.monotonic(), proc_cpu(proc.pid), *machine_cpu())
    proc.wait()
    if "start" not in marks or "end" not in marks or not run_dir:
        raise SystemExit(f"the run (concurrency {concurrency}) never reported its load window")
    (t0, c0, b0, a0), (t1, c1, b1, a1) = marks["start"], marks["end"]
    ops = sum(
        1 for ln in (Path(run_dir) / "history.jsonl").open() if '"type":"invoke"' not in ln
        and '"process":"nemesis"' not in ln
    )  # fmt: skip
    wall = t1 - t0
    return {
        "concurrency": concurrency,
        "ops_recorded": ops,
        "load_s": round(wall, 2),
        "ops_per_s": round(ops / wall, 1),
        "harness_cpu_us_per_op": round((c1 - c0) / max(ops, 1) * 1e6, 1),
        "harness_cpu_share": round((c1 - c0) / (a1 - a0), 3),  # of the whole machine
        "machine_busy_share": round((b1 - b0) / (a1 - a0), 3),
        "verdict_rc": proc.returncode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="squall-bench-harness-") as store:
        for c in args.concurrency:
            row = one(c, args.seconds, store)
            rows.append(row)
            print(
                f"concurrency {c:3d}: {row['ops_per_s']:7.1f} ops/s recorded, harness "
                f"{row['harness_cpu_us_per_op']:.0f} µs CPU/op, {row['harness_cpu_share']:.0%} "
                f"of the machine (machine busy {row['machine_busy_share']:.0%}), rc {row['verdict_rc']}"
            )
    print(json.dumps({"bench": "harness", "cores": os.cpu_count(), "rows": rows}))


if __name__ == "__main__":
    main()
