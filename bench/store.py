"""The store on a 5-node docker cluster: write throughput/latency, then failover time.

    python bench/store.py [--clients 4] [--ops 2000] [--kills 10]

Failover time is what a client sees: from the leader's SIGKILL to the first
write any node acknowledges, with one poller per node retrying every ~10 ms.
Goal: p50 <= 1 s, max <= 2 s. Prints figures; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from squall.cluster.base import ClusterSpec
from squall.cluster.docker import DockerCluster
from squall.systems.aurora.system import AuroraSystem
from squall.systems.aurora.system import url as node_url
from squall.util import quantile

POLL_S = 0.01
MAX_FAILS_IN_A_ROW = 10


def write_load(cluster: DockerCluster, clients: int, ops: int) -> dict[str, float]:
    """``clients`` threads write ``ops`` keys in total to the leader; latencies of acked writes.

    Gives up (SystemExit) when one client sees ``MAX_FAILS_IN_A_ROW`` failed
    writes in a row: a store that stopped applying would otherwise hold the
    bench for ops x timeout.
    """
    leader = cluster.leader(timeout=30)
    if leader is None:
        raise SystemExit("no leader to benchmark against")
    url = node_url(cluster, leader)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    give_up = threading.Event()

    def worker(w: int) -> None:
        session = requests.Session()
        in_a_row = 0
        for i in range(w, ops, clients):
            if give_up.is_set():
                return
            t0 = time.perf_counter()
            try:
                r = session.put(f"{url}/kv/k{i % 100}", json={"value": f"v{i}"}, timeout=5)
                error = None if r.status_code == 200 else f"{r.status_code} {r.text[:200]}"
            except requests.RequestException as exc:
                error = f"{type(exc).__name__}: {exc}"
            with lock:
                if error is None:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors.append(error)
            in_a_row = 0 if error is None else in_a_row + 1
            if in_a_row >= MAX_FAILS_IN_A_ROW:
                give_up.set()

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    wall = time.perf_counter() - start
    if give_up.is_set() or not latencies:
        raise SystemExit(
            f"writes keep failing ({len(errors)} failed, {len(latencies)} acked); "
            f"last error: {errors[-1] if errors else '?'}"
        )
    return {
        "write_ops": len(latencies),
        "write_errors": len(errors),
        "write_ops_per_s": len(latencies) / wall,
        "write_p50_ms": 1000 * quantile(latencies, 0.5),
        "write_p99_ms": 1000 * quantile(latencies, 0.99),
    }


def first_ack_after(cluster: DockerCluster, killed_at: float, tag: str, limit: float) -> float:
    """Seconds from ``killed_at`` until some node acknowledges a write (one poller per node)."""
    done = threading.Event()
    acked: list[float] = []

    def poll(node: str) -> None:
        session = requests.Session()
        url = f"{node_url(cluster, node)}/kv/failover"
        while not done.is_set() and time.monotonic() - killed_at < limit:
            try:
                r = session.put(url, json={"value": tag}, timeout=0.5)
                if r.status_code == 200:
                    acked.append(time.monotonic())
                    done.set()
                    return
            except requests.RequestException:
                pass
            done.wait(POLL_S)

    with ThreadPoolExecutor(len(cluster.nodes)) as pool:
        list(pool.map(poll, cluster.nodes))
    if not acked:
        raise SystemExit(f"no write acknowledged within {limit:.0f}s of killing the leader")
    return min(acked) - killed_at


def failovers(cluster: DockerCluster, kills: int) -> list[float]:
    times = []
    for k in range(kills):
        leader = cluster.leader(timeout=30)
        if leader is None:
            raise SystemExit(f"kill {k}: the cluster has no agreed leader to kill")
        killed_at = time.monotonic()
        cluster.kill(leader)
        took = first_ack_after(cluster, killed_at, f"kill-{k}", limit=30)
        times.append(took)
        print(
            f"  kill {k + 1:2d}: leader {leader} -> first acked write after {took * 1000:6.0f} ms"
        )
        cluster.start(leader)
        cluster.wait_healthy(60)  # every node back and a leader agreed before the next kill
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=10)
    args = parser.parse_args()
    # SIGTERM (e.g. `timeout`) must still tear the cluster down: atexit skips signals.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    spec = ClusterSpec(name=f"bench-store-{os.getpid()}", nodes=5)
    cluster = DockerCluster(spec, AuroraSystem(), progress=print)
    with cluster:
        print(f"write load: {args.clients} clients, {args.ops} writes to the leader")
        load = write_load(cluster, args.clients, args.ops)
        print(
            f"  {load['write_ops_per_s']:.0f} writes/s, p50 {load['write_p50_ms']:.1f} ms, "
            f"p99 {load['write_p99_ms']:.1f} ms, {load['write_errors']} errors"
        )
        print(f"failover: {args.kills} leader kills (SIGKILL -> first acknowledged write)")
        times = failovers(cluster, args.kills)
    p50, worst = statistics.median(times), max(times)
    met = p50 <= 1.0 and worst <= 2.0
    print(
        f"  failover p50 {p50 * 1000:.0f} ms, max {worst * 1000:.0f} ms "
        f"(goal p50 <= 1000 ms, max <= 2000 ms: {'met' if met else 'NOT met'})"
    )
    print(
        json.dumps(
            {
                "bench": "store",
                "clients": args.clients,
                **load,
                "kills": len(times),
                "failover_ms": [round(t * 1000) for t in times],
                "failover_p50_ms": round(p50 * 1000),
                "failover_max_ms": round(worst * 1000),
                "goal_met": met,
            }
        )
    )


if __name__ == "__main__":
    main()
