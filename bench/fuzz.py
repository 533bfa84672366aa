"""The long fuzz run of the readers of histories and run files (tests/test_fuzz.py is the short one).

    python bench/fuzz.py [--histories 10000] [--run-files 1000] [--run-dirs 200]
                         [--seed 0] [--timeout 10]

Each input is a mutation (tests/fuzzing.py) of a well-formed history, test file
and schedule, or run directory, judged in a child process that is killed
(and counted as a hang) when one input takes longer than ``--timeout``
seconds. Prints, per family, inputs, verdicts, clean errors, accepted runs,
tracebacks and hangs, the seeds of the first failures (rerun one with
``--only FAMILY:SEED``), and ends with one line of JSON holding every count.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests import fuzzing as fz  # noqa: E402

FAMILIES = ("history", "run-files", "run-dir")


def judge(family: str, seed: int, workdir: Path) -> tuple[str, str]:
    """(outcome, detail) of one input; an exception escaping is a traceback."""
    try:
        if family == "history":
            return fz.judge_history(fz.mutated_history(seed), workdir), ""
        if family == "run-files":
            return fz.judge_run_files(*fz.mutated_run_files(seed), workdir), ""
        test, _ = fz.mutated_run_files(seed)
        return fz.judge_run_dir(test, fz.mutated_history(seed), workdir), ""
    except Exception:  # noqa: BLE001 - exactly what is being counted
        return fz.TRACEBACK, traceback.format_exc(limit=3)[-400:]


def _serve(conn: Connection, root: str) -> None:
    workdir = Path(tempfile.mkdtemp(dir=root))
    while True:
        job = conn.recv()
        if job is None:
            return
        conn.send(judge(job[0], job[1], workdir))


class Judge:
    """A child process judging one input at a time, replaced when an input hangs it."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.root = tempfile.mkdtemp(prefix="squall-fuzz-")  # every child's files, removed at close
        self._ctx = mp.get_context("fork")
        self._start()

    def _start(self) -> None:
        self.conn, child = self._ctx.Pipe()
        self.proc = self._ctx.Process(target=_serve, args=(child, self.root), daemon=True)
        self.proc.start()

    def __call__(self, family: str, seed: int) -> tuple[str, str]:
        self.conn.send((family, seed))
        if self.conn.poll(self.timeout):
            try:
                return self.conn.recv()  # type: ignore[no-any-return]
            except EOFError:
                pass  # the child died (a crash of the interpreter counts as a traceback)
            self._restart()
            return fz.TRACEBACK, "the judging process died"
        self._restart()
        return fz.HANG, f"no outcome within {self.timeout:g} s"

    def _restart(self) -> None:
        self.proc.kill()
        self.proc.join(5)
        self._start()

    def close(self) -> None:
        self.conn.send(None)
        self.proc.join(5)
        shutil.rmtree(self.root, ignore_errors=True)


def run_family(judge_: Judge, family: str, count: int, seed0: int) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    failures: list[dict[str, Any]] = []
    t0 = time.monotonic()
    for i in range(count):
        seed = seed0 * 1_000_003 + i
        outcome, detail = judge_(family, seed)
        counts[outcome] += 1
        if outcome in (fz.TRACEBACK, fz.HANG) and len(failures) < 5:
            failures.append({"seed": seed, "outcome": outcome, "detail": detail})
        if (i + 1) % 1000 == 0:
            print(f"  {family}: {i + 1}/{count} …", file=sys.stderr, flush=True)
    seconds = time.monotonic() - t0
    return {
        "inputs": count,
        "verdicts": counts[fz.VERDICT],
        "clean_errors": counts[fz.CLEAN],
        "accepted": counts[fz.ACCEPTED],
        "tracebacks": counts[fz.TRACEBACK],
        "hangs": counts[fz.HANG],
        "seconds": round(seconds, 1),
        "failures": failures,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--histories", type=int, default=10_000)
    ap.add_argument("--run-files", type=int, default=1_000)
    ap.add_argument("--run-dirs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds before an input is a hang")
    ap.add_argument("--only", help="FAMILY:SEED: judge one input in this process and print it")
    args = ap.parse_args(argv)
    if args.only:
        family, _, seed = args.only.partition(":")
        if family not in FAMILIES or not seed.isdigit():
            ap.error(f"--only takes FAMILY:SEED with FAMILY one of {', '.join(FAMILIES)}")
        with tempfile.TemporaryDirectory(prefix="squall-fuzz-") as tmp:
            print(judge(family, int(seed), Path(tmp)))
        return 0
    judge_ = Judge(args.timeout)
    results: dict[str, Any] = {}
    try:
        for family, count in zip(
            FAMILIES, (args.histories, args.run_files, args.run_dirs), strict=True
        ):
            results[family] = run_family(judge_, family, count, args.seed)
    finally:
        judge_.close()
    print(
        f"{'family':10} {'inputs':>7} {'verdicts':>9} {'clean err':>9} {'accepted':>9} "
        f"{'tracebacks':>10} {'hangs':>6} {'seconds':>8}"
    )
    for family, r in results.items():
        print(
            f"{family:10} {r['inputs']:>7} {r['verdicts']:>9} {r['clean_errors']:>9} "
            f"{r['accepted']:>9} {r['tracebacks']:>10} {r['hangs']:>6} {r['seconds']:>8}"
        )
        for f in r["failures"]:
            print(f"  {f['outcome']} at --only {family}:{f['seed']}: {f['detail'][-200:]!r}")
    total = {k: sum(r[k] for r in results.values()) for k in ("inputs", "tracebacks", "hangs")}
    print(json.dumps({"bench": "fuzz", "seed": args.seed, **results, "total": total}))
    return 0 if total["tracebacks"] == total["hangs"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
