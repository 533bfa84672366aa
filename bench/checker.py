"""Linearizability checker speed against Porcupine's figures (Go, measured here).

    python bench/checker.py [--runs 5] [--profile]

Times the check only (pairing, partitioning, search, and the counterexample
of invalid histories), not the parsing, best of ``--runs``. Ends with one
line of JSON holding every figure.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import random
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from squall.checkers.importers import load  # noqa: E402
from squall.checkers.linearizable import check  # noqa: E402
from squall.history import Op  # noqa: E402

DATA = REPO / ".." / "shared" / "data" / "porcupine"
PORCUPINE_MS = {"etcd_000-049": 163.0, "kv c10-ok": 0.53, "kv 50 clients": 80.0}


def best_of(runs: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1000, out


def kv_history(clients: int, ops: int, keys: int, seed: int) -> list[Op]:
    """A linearizable kv history shaped like Porcupine's kv logs: closed-loop
    clients, most ops quick and one in ten slow (their c10 log: median span 5
    events, 90th percentile 57); each op takes effect at a random instant
    inside its interval on a simulated store."""
    rng = random.Random(seed)
    store: dict[str, str] = {}
    events: list[tuple[float, int, Op]] = []
    clock = [rng.random() for _ in range(clients)]
    count = [0] * clients
    for n in range(ops):
        c = min(range(clients), key=clock.__getitem__)
        start = clock[c]
        latency = rng.expovariate(1.0) * (20 if rng.random() < 0.1 else 1)
        effect = start + rng.random() * latency
        end = start + latency
        clock[c] = end + rng.random() * 0.1
        k = str(rng.randrange(keys))
        f = rng.choices(["get", "put", "append"], [0.45, 0.1, 0.45])[0]
        v = None if f == "get" else f"x {c} {count[c]} y"
        count[c] += 1
        events.append((start, n, Op(process=c, type="invoke", f=f, value=[k, v])))
        events.append((effect, n, Op(process=-1, type="effect", f=f, value=[k, v])))
        events.append((end, n, Op(process=c, type="ok", f=f, value=[k, v])))
    events.sort(key=lambda e: e[0])
    out: list[Op] = []
    reads: dict[int, str] = {}
    for _, n, op in events:
        k, v = op.value
        if op.type == "effect":
            if op.f == "get":
                reads[n] = store.get(k, "")
            else:
                store[k] = v if op.f == "put" else store.get(k, "") + v
            continue
        if op.type == "ok" and op.f == "get":
            op = op.with_(value=[k, reads[n]])
        out.append(op.with_(index=len(out), time=len(out)))
    return out


def many_hard_keys(copies: int) -> list[Op]:
    """Several kv histories side by side (keys and processes renamed apart):
    a history with many large partitions, the case the process pool is for."""
    out: list[Op] = []
    for c in range(copies):
        for op in kv_history(clients=40, ops=4000, keys=16, seed=7 + c):
            out.append(
                op.with_(
                    process=int(op.process) + 1000 * c, value=[f"{c}/{op.value[0]}", op.value[1]]
                )
            )
    return [o.with_(index=i, time=i) for i, o in enumerate(out)]


def register_history(n_ops: int, keys: int, clients: int, seed: int) -> list[Op]:
    """A linearizable register history with overlapping ops and some timeouts."""
    rng = random.Random(seed)
    store: dict[int, Any] = {}
    out: list[Op] = []
    busy: dict[int, list[Any]] = {}
    next_proc = clients
    free = list(range(clients))
    started = 0
    while started < n_ops or busy:
        if free and started < n_ops and (not busy or rng.random() < 0.5):
            p = free.pop(rng.randrange(len(free)))
            k = rng.randrange(keys)
            f = "read" if rng.random() < 0.5 else "write"
            v = None if f == "read" else rng.randrange(5)
            busy[p] = [f, k, v, None]
            started += 1
            out.append(Op(process=p, type="invoke", f=f, value=[k, v]))
            continue
        p = rng.choice(list(busy))
        f, k, v, _ = busy.pop(p)
        if f == "write":
            store[k] = v
            timed_out = rng.random() < 0.01
        else:
            v = store.get(k)
            timed_out = False
        if timed_out:
            out.append(Op(process=p, type="info", f=f, value=[k, v], error="timeout"))
            free.append(next_proc)
            next_proc += 1
        else:
            out.append(Op(process=p, type="ok", f=f, value=[k, v]))
            free.append(p)
    return [o.with_(index=i, time=i) for i, o in enumerate(out)]


def bench_etcd(runs: int) -> dict[str, Any]:
    expected = json.loads((DATA / "expected.json").read_text())["etcd_linearizable"]
    logs = [(load(DATA / "etcd" / name), want) for name, want in sorted(expected.items())]

    def run() -> int:
        wrong = 0
        for h, want in logs:
            wrong += check("cas-register", h, parallel=False)["valid"] is not want
        return wrong

    ms, wrong = best_of(runs, run)
    print(
        f"etcd_000-049 (50 logs): {ms:8.1f} ms  (Porcupine 163 ms, ratio {ms / 163:.2f}x), wrong verdicts: {wrong}"
    )
    return {"etcd_ms": round(ms, 2), "etcd_ratio": round(ms / 163, 2), "etcd_wrong": wrong}


def bench_kv(runs: int) -> dict[str, Any]:
    res: dict[str, Any] = {}
    for path in sorted((DATA / "kv").glob("*.txt")):
        h = load(path)
        ms, r = best_of(runs * 4, lambda h=h: check("kv", h, parallel=False))  # type: ignore[misc]
        extra = f" (Porcupine 0.53 ms, ratio {ms / 0.53:.2f}x)" if path.stem == "c10-ok" else ""
        print(f"kv {path.stem:8s} {len(h):5d} events: {ms:8.2f} ms  valid={r['valid']}{extra}")
        res[f"kv_{path.stem}_ms"] = round(ms, 3)
    res["kv_c10_ok_ratio"] = round(res.get("kv_c10-ok_ms", 0) / 0.53, 2)
    h = kv_history(clients=50, ops=1850, keys=10, seed=1)
    ms, r = best_of(runs, lambda: check("kv", h, parallel=False))
    print(
        f"kv 50 clients, generated {len(h)} events: {ms:8.1f} ms  valid={r['valid']} "
        f"(Porcupine 80 ms on its c50 log, ratio {ms / 80:.2f}x)"
    )
    res.update({"kv50_ms": round(ms, 2), "kv50_ratio": round(ms / 80, 2), "kv50_valid": r["valid"]})
    return res


def bench_pool(runs: int) -> dict[str, Any]:
    h = many_hard_keys(4)
    seq, r = best_of(max(1, runs // 2), lambda: check("kv", h, parallel=False))
    pool, rp = best_of(max(1, runs // 2), lambda: check("kv", h, parallel=True))
    auto, ra = best_of(max(1, runs // 2), lambda: check("kv", h))
    print(
        f"kv, 64 keys with several hard ones ({len(h)} events): {seq:8.1f} ms sequential, "
        f"{pool:8.1f} ms process pool, {auto:8.1f} ms automatic; valid={r['valid']}/{rp['valid']}/{ra['valid']}"
    )
    return {
        "many_keys_seq_ms": round(seq, 1),
        "many_keys_pool_ms": round(pool, 1),
        "many_keys_auto_ms": round(auto, 1),
    }


def bench_register(runs: int) -> dict[str, Any]:
    h = register_history(100_000, keys=1000, clients=20, seed=2)
    n_ops = sum(1 for o in h if o.type == "invoke")
    ms_seq, r = best_of(max(1, runs // 2), lambda: check("register", h, parallel=False))
    ms_par, rp = best_of(1, lambda: check("register", h, parallel=True))
    ms_auto, _ = best_of(1, lambda: check("register", h))
    tracemalloc.start()
    check("register", h, parallel=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"register {n_ops} ops over 1000 keys: {ms_seq:8.1f} ms sequential, {ms_par:8.1f} ms forced "
        f"process pool, {ms_auto:8.1f} ms automatic; valid={r['valid']}/{rp['valid']}; peak traced "
        f"{peak / 2**20:.1f} MiB, process max RSS {rss:.0f} MiB"
    )
    return {
        "register100k_ms": round(ms_seq, 1),
        "register100k_pool_ms": round(ms_par, 1),
        "register100k_auto_ms": round(ms_auto, 1),
        "register100k_peak_mib": round(peak / 2**20, 1),
        "max_rss_mib": round(rss),
    }


def profile(label: str, fn: Callable[[], Any]) -> None:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(6)
    print(f"--- where the time goes: {label}")
    print("\n".join(line for line in buf.getvalue().splitlines() if line.strip())[:3000])


def profile_all() -> None:
    expected = json.loads((DATA / "expected.json").read_text())["etcd_linearizable"]
    logs = [load(DATA / "etcd" / name) for name in sorted(expected)]
    profile("etcd_000-049", lambda: [check("cas-register", h, parallel=False) for h in logs])
    kv = kv_history(clients=50, ops=1850, keys=10, seed=1)
    profile("kv 50 clients", lambda: check("kv", kv, parallel=False))
    reg = register_history(100_000, keys=1000, clients=20, seed=2)
    profile("register 100k ops", lambda: check("register", reg, parallel=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="print where each check spends its time")
    args = ap.parse_args()
    if not (DATA / "expected.json").exists():
        sys.exit(f"Porcupine test data not found at {DATA}")
    figures: dict[str, Any] = {}
    figures.update(bench_etcd(args.runs))
    figures.update(bench_kv(args.runs))
    figures.update(bench_pool(args.runs))
    figures.update(bench_register(args.runs))
    if args.profile:
        profile_all()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
