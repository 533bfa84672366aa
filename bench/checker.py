"""Linearizability checker speed: the compiled core against the Python one, and
against Porcupine's figures when given, on identical inputs.

    python bench/checker.py [--runs 7] [--porcupine FIGURES.json] [--write-inputs DIR]
                            [--big] [--profile]

Times ``check()`` in process on parsed histories (pairing, partitioning, the
search, and the counterexample of an invalid history; not the parsing; and,
as "verdict", ``check(explain=False)``, the verdict without a counterexample
as Porcupine's CheckEvents answers), in
CPU milliseconds (a shared machine's load inflates wall time far more),
median of ``--runs`` interleaved rounds, for each input with the Rust core
and the Python core. Inputs: Porcupine's etcd_000-049 and kv c01/c10 logs,
and generated kv histories (50 clients over 10 keys, like Porcupine's c50
logs; with ``--big``, 60-70 clients on one key: appending, appending among
many reads, and putting and getting, with peak memory and the configurations
the search explores with its look-ahead and without).

Porcupine's times are never built in. Go installs from Debian's packages
(golang-go), but Porcupine itself cannot be fetched here and its code is
never committed to this project: build it from a checkout of your own,
time its ``CheckEvents`` on the same files on the same machine (its own
test parsers' reading of the etcd and kv logs; ``--write-inputs DIR``
writes the generated histories as Porcupine kv logs), and pass the figures
back: ``--porcupine FIGURES.json``, a JSON object of file name ->
milliseconds (CPU time, median of runs, parsing excluded, as here), or
better ``--porcupine-cmd CMD``, a command that times the files it is given
and prints such an object: it is run at the start of every round, so both
checkers see the same load (this machine's speed drifts twofold within
minutes, and figures taken minutes apart compare nothing). Ends with one
line of JSON.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import random
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from squall.checkers import _lin_core  # noqa: E402
from squall.checkers.importers import load  # noqa: E402
from squall.checkers.linearizable import check  # noqa: E402
from squall.history import Op  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "porcupine"
# "verdict": the compiled core asked for the verdict alone (check(explain=False):
# no counterexample), the answer Porcupine's CheckEvents gives.
CORES = ("rust", "python", "verdict")


@dataclass(frozen=True, kw_only=True)
class Case:
    group: str
    name: str  # the input's file name (the key of a Porcupine figures file)
    model: str
    history: list[Op]
    expected: bool | None = None
    big: bool = False  # seconds each: timed once, and reported with its memory
    path: Path | None = None  # the input's file, for Porcupine; None: generated here


def kv_history(
    clients: int,
    ops: int,
    keys: int,
    seed: int,
    slow: float = 0.1,
    mix: tuple[float, float, float] = (0.45, 0.1, 0.45),
    think: float = 0.1,
) -> list[Op]:
    """A linearizable kv history shaped like Porcupine's kv logs: closed-loop
    clients, most ops quick and a fraction ``slow`` twenty times slower (one
    in ten fits their c10 log: median span 5 events, 90th percentile 57);
    each op takes effect at a random instant inside its interval on a
    simulated store. ``mix`` weighs get, put and append; a client waits up to
    ``think`` (mean latency 1) between its ops, so with a long think only
    some of the clients have an op open at once."""
    rng = random.Random(seed)
    store: dict[str, str] = {}
    events: list[tuple[float, int, Op]] = []
    clock = [rng.random() for _ in range(clients)]
    count = [0] * clients
    for n in range(ops):
        c = min(range(clients), key=clock.__getitem__)
        start = clock[c]
        latency = rng.expovariate(1.0) * (20 if rng.random() < slow else 1)
        effect = start + rng.random() * latency
        end = start + latency
        clock[c] = end + rng.random() * think
        k = str(rng.randrange(keys))
        f = rng.choices(["get", "put", "append"], mix)[0]
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


def porcupine_kv_text(history: list[Op]) -> str:
    """A kv history as Porcupine's kv logs write it (one EDN map a line, with :key)."""
    lines = []
    for op in history:
        key, value = op.value
        v = "nil" if value is None else json.dumps(value)
        lines.append(
            f"{{:process {op.process}, :type :{op.type}, :f :{op.f}, :key {json.dumps(key)}, :value {v}}}"
        )
    return "\n".join(lines) + "\n"


def cases(big: bool) -> list[Case]:
    expected = json.loads((DATA / "expected.json").read_text())
    out = [
        Case(
            group="etcd",
            name=name,
            model="cas-register",
            history=load(DATA / "etcd" / name),
            expected=want,
            path=DATA / "etcd" / name,
        )
        for name, want in sorted(expected["etcd_linearizable"].items())
    ]
    out += [
        Case(
            group=f"kv {Path(name).stem}",
            name=name,
            model="kv",
            history=load(DATA / "kv" / name),
            expected=want,
            path=DATA / "kv" / name,
        )
        for name, want in sorted(expected["kv_linearizable"].items())
    ]
    for seed in (1, 2, 3):
        out.append(
            Case(
                group="kv c50 generated",
                name=f"kv-c50-gen-{seed}.txt",
                model="kv",
                history=kv_history(clients=50, ops=1850, keys=10, seed=seed),
                expected=True,
            )
        )
    # 60-70 clients on one key, three ways: appends (every order of the
    # appends no read has seen is a state of its own); appends among many
    # reads (each read pins the string, and the look-ahead cuts the orders
    # no read allows); puts and gets only (a read names the put it saw).
    kinds = [
        ("kv 60-70 clients, 1 key", "kv", (0.45, 0.1, 0.45)),
        ("read-heavy appends 60-70 clients, 1 key", "readheavy", (0.8, 0.1, 0.1)),
        ("put/get 60-70 clients, 1 key", "putget", (0.5, 0.5, 0.0)),
    ]
    for group, prefix, mix in kinds if big else []:
        for clients in (60, 65, 70):
            out.append(
                Case(
                    group=group,
                    name=f"{prefix}-c{clients}-1key.txt",
                    model="kv",
                    history=kv_history(clients, 12 * clients, keys=1, seed=clients, mix=mix),
                    expected=True,
                    big=True,
                )
            )
    return out


def once(case: Case, core: str, time_limit: float | None) -> tuple[float, dict[str, Any]]:
    """CPU ms of one check: the checks run in this process (parallel=False), and CPU
    time does not count the time a loaded machine left the process waiting."""
    explain = core != "verdict"
    core = "rust" if core == "verdict" else core
    gc.collect()  # no collection owed by the last check lands in this one
    t0 = time.process_time()
    res = check(
        case.model, case.history, parallel=False, core=core, time_limit=time_limit, explain=explain
    )
    return (time.process_time() - t0) * 1000, res


def measure(
    all_cases: list[Case],
    runs: int,
    time_limit: float | None,
    rival: Callable[[], dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Median ms per (case, core), interleaved rounds so both cores see the same
    load; ``rival`` (Porcupine's command, see ``rival_command``) is timed at the
    start of every round, so it sees that load too."""
    times: dict[tuple[str, str], list[float]] = {}
    theirs: dict[str, list[float]] = {}
    results: dict[tuple[str, str], dict[str, Any]] = {}
    # One untimed check of an invalid history first: the counterexample's
    # module is imported on first use, and that is start-up, not checking.
    warm = next((c for c in all_cases if c.expected is False), None)
    for core in CORES if warm else ():
        once(warm, core, time_limit)  # type: ignore[arg-type]
    for r in range(runs):
        for name, ms in (rival() if rival else {}).items():
            theirs.setdefault(name, []).append(ms)
        for case in all_cases:
            for core in CORES:
                if case.big and (r > 0 or core == "verdict"):
                    continue  # seconds each: one round says it; all valid, nothing to explain
                ms, res = once(case, core, time_limit)
                times.setdefault((case.name, core), []).append(ms)
                results[(case.name, core)] = res
    return {
        "ms": {k: statistics.median(v) for k, v in times.items()},
        "results": results,
        "rival": {k: statistics.median(v) for k, v in theirs.items()},
    }


def rival_command(cmd: str, all_cases: list[Case], tmp: Path) -> Callable[[], dict[str, float]]:
    """Porcupine timed by a command of the user's (``--porcupine-cmd``): run as
    ``CMD FILE...`` on every input but the --big ones (seconds to minutes
    each), it prints a JSON object of file name -> milliseconds. Generated
    inputs are written to ``tmp`` as Porcupine kv logs first."""
    paths = []
    for c in all_cases:
        if c.big:
            continue
        if c.path is None:
            (tmp / c.name).write_text(porcupine_kv_text(c.history))
        paths.append(str(c.path or tmp / c.name))

    def run() -> dict[str, float]:
        try:
            done = subprocess.run(
                [*shlex.split(cmd), *paths], capture_output=True, text=True, timeout=600
            )
            got = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else None
            if done.returncode != 0 or not isinstance(got, dict):
                raise ValueError(f"exit {done.returncode}, stderr: {done.stderr.strip()[-300:]!r}")
            return {str(k): float(v) for k, v in got.items() if not str(k).endswith(":unknown")}
        except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
            sys.exit(
                f"bench/checker.py: --porcupine-cmd {cmd!r}: {exc}; it must print one JSON "
                "object of input file name -> milliseconds for the files it is given"
            )

    return run


def report(
    all_cases: list[Case], got: dict[str, Any], porcupine: dict[str, float]
) -> dict[str, Any]:
    ms, results = got["ms"], got["results"]
    figures: dict[str, Any] = {}
    wrong = [
        f"{c.name} ({core})"
        for c in all_cases
        for core in CORES
        if c.expected is not None
        and (c.name, core) in results
        and results[(c.name, core)]["valid"] is not c.expected
        and results[(c.name, core)]["valid"] != "unknown"
    ]
    groups: dict[str, list[Case]] = {}
    for c in all_cases:
        groups.setdefault(c.group, []).append(c)
    nan = float("nan")
    print(
        f"{'group':26s} {'files':>5s} {'rust cpu ms':>11s} {'py cpu ms':>10s} {'py/rust':>8s}"
        f" {'porcupine ms':>13s} {'rust/porc':>9s} {'verdict ms':>10s} {'verd/porc':>9s}"
    )
    for group, cs in groups.items():
        rust = sum(ms[(c.name, "rust")] for c in cs)
        py = sum(ms[(c.name, "python")] for c in cs)
        bare = sum(ms[(c.name, "verdict")] for c in cs) if not cs[0].big else None
        have = [c for c in cs if c.name in porcupine]
        porc = sum(porcupine[c.name] for c in have) if len(have) == len(cs) else None
        ratio = rust / porc if porc else None
        bare_ratio = bare / porc if porc and bare is not None else None
        print(
            f"{group:26s} {len(cs):5d} {rust:11.2f} {py:10.2f} {py / rust:8.1f}x"
            f" {nan if porc is None else porc:13.2f} {nan if ratio is None else ratio:8.2f}x"
            f" {nan if bare is None else bare:10.2f} {nan if bare_ratio is None else bare_ratio:8.2f}x"
        )
        key = group.replace(" ", "_").replace(",", "")
        figures[f"{key}_rust_ms"] = round(rust, 3)
        figures[f"{key}_python_ms"] = round(py, 3)
        if bare is not None:
            figures[f"{key}_verdict_ms"] = round(bare, 3)
        if ratio is not None:
            figures[f"{key}_rust_over_porcupine"] = round(ratio, 3)
        if bare_ratio is not None:
            figures[f"{key}_verdict_over_porcupine"] = round(bare_ratio, 3)
    etcd = groups.get("etcd", [])
    if etcd:
        med_rust = statistics.median(ms[(c.name, "rust")] for c in etcd)
        med_py = statistics.median(ms[(c.name, "python")] for c in etcd)
        print(f"etcd per-file median: rust {med_rust:.3f} ms, python {med_py:.3f} ms")
        figures.update(
            etcd_median_rust_ms=round(med_rust, 4), etcd_median_python_ms=round(med_py, 4)
        )
        med_bare = statistics.median(ms[(c.name, "verdict")] for c in etcd)
        print(f"etcd per-file median, verdict only: rust {med_bare:.3f} ms")
        figures["etcd_median_verdict_ms"] = round(med_bare, 4)
        if all(c.name in porcupine for c in etcd):
            med_p = statistics.median(porcupine[c.name] for c in etcd)
            print(
                f"etcd per-file median: porcupine {med_p:.3f} ms, rust/porcupine "
                f"{med_rust / med_p:.2f}x, verdict only {med_bare / med_p:.2f}x"
            )
            figures["etcd_median_rust_over_porcupine"] = round(med_rust / med_p, 3)
            figures["etcd_median_verdict_over_porcupine"] = round(med_bare / med_p, 3)
    for c in (c for c in all_cases if c.big):
        r = results[(c.name, "rust")]
        plain = plain_configurations(c, r["states_explored"])
        print(
            f"{c.name}: rust {r['valid']} in {ms[(c.name, 'rust')] / 1000:.1f} s, "
            f"{r['states_explored']} configurations (without the look-ahead: {plain}), cache "
            f"peak {(r.get('cache_peak_bytes') or 0) / 2**20:.0f} MiB; {r.get('unknown_reason') or ''}"
        )
        figures[f"{c.name}_rust_valid"] = r["valid"]
        figures[f"{c.name}_rust_configurations"] = r["states_explored"]
        figures[f"{c.name}_rust_plain_configurations"] = plain
        figures[f"{c.name}_rust_peak_mib"] = round((r.get("cache_peak_bytes") or 0) / 2**20)
    figures["wrong_verdicts"] = wrong
    figures["max_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(f"wrong verdicts: {wrong or 'none'}; process max RSS {figures['max_rss_mib']} MiB")
    return figures


def plain_configurations(case: Case, explored: int) -> str:
    """What the compiled search explores on this case with its look-ahead off
    (the search Lowe and Porcupine run, plus this project's other prunings),
    bounded at 30 s or 25x what the look-ahead needed."""
    from squall.checkers.linearizable import _columns, to_operations
    from squall.checkers.models import get_model

    model = get_model(case.model)
    cols = _columns(model, to_operations(model, case.history))
    limits = _lin_core.Limits(
        core="rust", deadline=time.monotonic() + 30, max_states=25 * explored + 1000
    )
    got = _lin_core.search_columns(model, cols, limits, look=False)
    return str(got.states) if got.valid != "unknown" else f">{got.states} (undecided)"


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
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument(
        "--porcupine", type=Path, help="JSON: input file name -> Porcupine ms, measured here"
    )
    ap.add_argument(
        "--porcupine-cmd",
        help="a command timing Porcupine: CMD FILE... prints JSON file name -> ms; run every round",
    )
    ap.add_argument("--write-inputs", type=Path, help="write the generated histories here and stop")
    ap.add_argument("--big", action="store_true", help="add 60-70-client single-key histories")
    ap.add_argument("--time-limit", type=float, default=120.0, help="per check, seconds")
    ap.add_argument("--profile", action="store_true", help="print where each check spends its time")
    args = ap.parse_args()
    if not (DATA / "expected.json").exists():
        sys.exit(f"bench/checker.py: Porcupine test data not found at {DATA}")
    if not _lin_core.available():
        sys.exit(
            "bench/checker.py: the compiled core is not built; run ./scripts/setup (needs cargo)"
        )
    all_cases = cases(args.big)
    # The inputs live for the whole run: frozen, the collector never walks them
    # during a check (a pass over tens of thousands of ops is a millisecond).
    gc.freeze()
    if args.write_inputs:
        args.write_inputs.mkdir(parents=True, exist_ok=True)
        for c in all_cases:
            if c.path is None:  # generated here, not one of Porcupine's files
                (args.write_inputs / c.name).write_text(porcupine_kv_text(c.history))
        print(json.dumps({"written": str(args.write_inputs)}))
        return
    porcupine: dict[str, float] = {}
    rival = None
    if args.porcupine_cmd:
        tmp = Path(tempfile.mkdtemp(prefix="squall-bench-"))
        rival = rival_command(args.porcupine_cmd, all_cases, tmp)
    elif args.porcupine:
        try:
            porcupine = {
                str(k): float(v) for k, v in json.loads(args.porcupine.read_text()).items()
            }
        except (OSError, ValueError, AttributeError) as exc:
            sys.exit(
                f"bench/checker.py: --porcupine {args.porcupine}: {exc}; give a JSON object "
                "of input file name -> milliseconds"
            )
    else:
        print(
            "no --porcupine figures: Rust against Python only (see --help for how to time Porcupine)"
        )
    got = measure(all_cases, args.runs, args.time_limit, rival)
    figures = report(all_cases, got, got["rival"] or porcupine)
    if args.profile:
        profile_all()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
