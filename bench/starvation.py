"""Write latency of task status updates while readers storm getJobUpdateDetails (the seed's scenario).

    python bench/starvation.py [--backend local|docker] [--readers 32] [--instances 4000] [--batch 1000]
                               [--drivers 4] [--seconds 15]

On a real 3-node cluster: one job update of ``instances`` instances in
batches of ``batch``; ``drivers`` threads move its tasks PENDING → ASSIGNED →
STARTING → RUNNING with compare-and-set status updates, first with no reader,
then while ``readers`` clients call getJobUpdateDetails for the update in a
loop. Readers run in their own processes so they do not steal this
process's interpreter from the drivers' clocks, and they read each answer
without decoding it: the store is measured, not the client's JSON parser. Prints p50/p99/max
of the status updates in both phases; goal with the readers: p99 <= 50 ms and
max <= 500 ms. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from squall.cluster.base import Cluster, ClusterSpec
from squall.systems.aurora.system import AuroraSystem
from squall.systems.aurora.system import url as node_url
from squall.util import quantile

STEPS = (("PENDING", "ASSIGNED"), ("ASSIGNED", "STARTING"), ("STARTING", "RUNNING"))
JOB = {"role": "bench", "env": "storm", "name": "update"}
THREADS_PER_READER_PROC = 8


def make_cluster(backend: str) -> Cluster:
    spec = ClusterSpec(name=f"sqstarve{os.getpid()}", nodes=3)
    if backend == "docker":
        from squall.cluster.docker import DockerCluster
        from squall.cluster.image import ensure_image

        ensure_image(AuroraSystem().image(), print)
        return DockerCluster(spec, AuroraSystem(), progress=print)
    from squall.cluster.local import LocalCluster

    return LocalCluster(spec, AuroraSystem())


def cpu_seconds(cluster: Cluster) -> float | None:
    """CPU time (user + system) all node processes used so far; local backend only, else None.

    Unlike latency, CPU spent per write hardly depends on how loaded the machine is.
    """
    procs = getattr(cluster, "procs", None)
    if not procs:
        return None
    total = 0
    for p in procs.values():
        try:
            with open(f"/proc/{p.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def ok(session: requests.Session, method: str, url: str, body: Any = None) -> Any:
    r = session.request(method, url, json=body, timeout=30)
    if r.status_code != 200:
        raise SystemExit(f"{method} {url} failed: {r.status_code} {r.text}")
    return r.json()


def setup(url: str, instances: int, batch: int) -> tuple[str, list[str]]:
    s = requests.Session()
    ok(s, "POST", f"{url}/jobs", {**JOB, "instances": 0})
    uid = ok(
        s,
        "POST",
        f"{url}/updates",
        {"job": "bench/storm/update", "instances": instances, "batch_size": batch},
    )["update_id"]
    tasks = ok(s, "GET", f"{url}/tasks?job=bench/storm/update")["tasks"]
    return uid, [t["task_id"] for t in tasks if t["update_id"] == uid]


def reader_proc(url: str, threads: int, stop: Any, counts: Any) -> None:
    """One reader process: ``threads`` clients calling getJobUpdateDetails until ``stop`` is set."""

    def loop(k: int) -> None:
        s = requests.Session()
        n = errors = 0
        while not stop.is_set():
            try:
                r = s.get(url, timeout=30)  # the body is read, not decoded: the server is measured
                n, errors = (n + 1, errors) if r.status_code == 200 else (n, errors + 1)
            except requests.RequestException:
                errors += 1
        with counts.get_lock():
            counts[0] += n
            counts[1] += errors

    ts = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def drive(
    url: str, tasks: list[str], drivers: int, seconds: float
) -> tuple[list[float], int, list[str]]:
    """Status updates for ``seconds`` (or until the tasks run out); latencies of acknowledged ones."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    done: list[str] = []

    def worker(mine: list[str]) -> None:
        nonlocal errors
        s = requests.Session()
        for task in mine:
            for frm, to in STEPS:
                if time.monotonic() > deadline:
                    return
                t0 = time.perf_counter()
                r = s.post(f"{url}/tasks/{task}/status", json={"from": frm, "to": to}, timeout=30)
                took = time.perf_counter() - t0
                with lock:
                    if r.status_code == 200:
                        latencies.append(took)
                    else:
                        errors += 1
            with lock:
                done.append(task)

    with ThreadPoolExecutor(drivers) as pool:
        list(pool.map(worker, [tasks[i::drivers] for i in range(drivers)]))
    return latencies, errors, done


def phase(
    cluster: Cluster,
    url: str,
    uid: str,
    tasks: list[str],
    readers: int,
    drivers: int,
    seconds: float,
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    stop, counts = ctx.Event(), ctx.Array("l", [0, 0])
    procs = []
    for p in range((readers + THREADS_PER_READER_PROC - 1) // THREADS_PER_READER_PROC):
        threads = min(THREADS_PER_READER_PROC, readers - p * THREADS_PER_READER_PROC)
        procs.append(
            ctx.Process(target=reader_proc, args=(f"{url}/updates/{uid}", threads, stop, counts))
        )
    for proc in procs:
        proc.start()
    try:
        if readers:
            time.sleep(
                2
            )  # let the storm build up before measuring (not synchronisation: a warm-up)
        t0, cpu0 = time.monotonic(), cpu_seconds(cluster)
        lat, errors, done = drive(url, tasks, drivers, seconds)
        wall, cpu1 = time.monotonic() - t0, cpu_seconds(cluster)
    finally:
        stop.set()
        for proc in procs:
            proc.join(timeout=60)
    if not lat:
        raise SystemExit(
            f"no status update was acknowledged with {readers} readers ({errors} errors)"
        )
    return {
        "readers": readers,
        "writes": len(lat),
        "write_errors": errors,
        "tasks_done": len(done),
        "writes_per_s": round(len(lat) / wall, 1),
        "p50_ms": round(1000 * statistics.median(lat), 1),
        "p99_ms": round(1000 * quantile(lat, 0.99), 1),
        "max_ms": round(1000 * max(lat), 1),
        "details_reads": counts[0],
        "details_per_s": round(counts[0] / wall, 1),
        "read_errors": counts[1],
        "node_cpu_s": None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backend", choices=("local", "docker"), default="local")
    p.add_argument("--readers", type=int, default=32)
    p.add_argument("--instances", type=int, default=4000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--drivers", type=int, default=4)
    p.add_argument("--seconds", type=float, default=15)
    a = p.parse_args()
    cluster = make_cluster(a.backend)
    with cluster:
        leader = cluster.leader(timeout=30)
        if leader is None:
            raise SystemExit("the cluster agreed on no leader within 30s")
        url = node_url(cluster, leader)
        uid, tasks = setup(url, a.instances, a.batch)
        print(
            f"{a.backend} cluster of 3, leader {leader}; update {uid} of {len(tasks)} instances, batch {a.batch}"
        )
        results = []
        half = len(tasks) // 2  # each phase drives its own tasks, from PENDING
        for readers, mine in ((0, tasks[:half]), (a.readers, tasks[half:])):
            r = phase(cluster, url, uid, mine, readers, a.drivers, a.seconds)
            results.append(r)
            print(
                f"{readers:3d} readers: {r['writes']} status updates ({r['writes_per_s']}/s), p50 {r['p50_ms']} ms, "
                f"p99 {r['p99_ms']} ms, max {r['max_ms']} ms; {r['details_reads']} details reads "
                f"({r['details_per_s']}/s), {r['write_errors'] + r['read_errors']} errors"
            )
            if r["node_cpu_s"] is not None and not readers:
                print(
                    f"     nodes' CPU per status update: {1000 * r['node_cpu_s'] / r['writes']:.2f} ms"
                )
    storm = results[-1]
    met = storm["p99_ms"] <= 50 and storm["max_ms"] <= 500
    print(
        f"with {a.readers} readers: p99 {storm['p99_ms']} ms (goal <= 50), max {storm['max_ms']} ms "
        f"(goal <= 500) -> {'met' if met else 'NOT met'}"
    )
    print(
        json.dumps(
            {
                "bench": "starvation",
                "backend": a.backend,
                "instances": a.instances,
                "batch": a.batch,
                "drivers": a.drivers,
                "quiet": results[0],
                "storm": storm,
                "goal_met": met,
            }
        )
    )


if __name__ == "__main__":
    main()
