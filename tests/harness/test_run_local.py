"""Whole runs on the local backend (real node processes on loopback): the run
directory, reproducibility from the seed, and Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from squall.history import INVOKE, read_history

pytestmark = pytest.mark.slow


def squall(*args: str, store: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "squall.cli",
            "run",
            "--backend",
            "local",
            "--store",
            str(store),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def only_run(store: Path) -> Path:
    runs = [p.parent for p in store.glob("*/*/test.yaml") if not p.parent.is_symlink()]
    assert len(runs) == 1, runs
    return runs[0]


def per_worker(run_dir: Path, concurrency: int) -> dict[int, list[tuple[str, str]]]:
    """Each worker's invocations in order (a worker's process ids are w, w+C, w+2C…)."""
    out: dict[int, list[tuple[str, str]]] = {}
    for op in read_history(run_dir / "history.jsonl"):
        if op.type == INVOKE and isinstance(op.process, int) and op.process < 10_000:
            out.setdefault(op.process % concurrency, []).append((op.f, json.dumps(op.value)))
    return out


def test_a_run_leaves_a_complete_run_directory(tmp_path):
    proc = squall(
        "--workload",
        "register",
        "--nemesis",
        "none",
        "--time-limit",
        "6",
        "--nodes",
        "3",
        "--seed",
        "11",
        store=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = only_run(tmp_path)
    for name in (
        "test.yaml",
        "history.jsonl",
        "results.json",
        "results.xml",
        "report.html",
        "nemesis-timeline.yaml",
        "nodes/n1/node.log",
        "nodes/n1/final.json",
        "status-samples.jsonl",
    ):
        assert (run / name).exists(), f"{name} missing from the run directory"
    assert (tmp_path / "latest").resolve() == run.resolve()
    results = json.loads((run / "results.json").read_text())
    assert results["valid"] is True and results["linearizable"]["valid"] is True
    assert len(read_history(run / "history.jsonl")) > 200
    assert yaml.safe_load((run / "test.yaml").read_text())["seed"] == 11
    assert "seed 11" in proc.stderr
    answered = {
        json.loads(line)["node"]
        for line in (run / "status-samples.jsonl").read_text().splitlines()
        if json.loads(line)["status"]
    }
    assert answered == {"n1", "n2", "n3"}, "every node's status was sampled during the run"
    # The store's log, read back from the collected data, holds every acknowledged write.
    said = results["linearizable"]["resolution"]
    assert said["complete"] is True and said["acknowledged_not_in_log"] == 0, said
    committed = json.loads((run / "resolution.json").read_text())["committed"]
    history = read_history(run / "history.jsonl")
    acked = {o.extra["request_id"] for o in history if o.type == "ok" and o.f in ("write", "cas")}
    assert acked and acked <= set(committed), sorted(acked - set(committed))[:5]


def test_the_same_seed_gives_the_same_ops_per_worker_and_the_same_faults(tmp_path):
    runs = []
    for i in range(2):
        store = tmp_path / f"s{i}"
        proc = squall(
            "--workload",
            "register",
            "--nemesis",
            "kill,pause",
            "--nemesis-interval",
            "2",
            "--time-limit",
            "8",
            "--nodes",
            "3",
            "--concurrency",
            "4",
            "--seed",
            "5",
            store=store,
        )
        assert proc.returncode in (0, 1, 2), proc.stderr[-3000:]
        runs.append(only_run(store))
    a, b = (per_worker(r, 4) for r in runs)
    assert set(a) == set(b) == {0, 1, 2, 3}
    for w in a:
        n = min(len(a[w]), len(b[w]))
        assert n >= 10, f"worker {w} ran only {n} ops"
        assert a[w][:n] == b[w][:n], f"worker {w}'s op sequence differs between runs"
    # The executed timeline records when each fault really started and stopped;
    # same seed, same plan: the same faults in the same order at (nearly) the same times.
    timelines = [yaml.safe_load((r / "nemesis-timeline.yaml").read_text())["events"] for r in runs]
    assert timelines[0], "the schedule injected no fault"
    # A fault planned just before the time limit may or may not have started.
    n = min(len(t) for t in timelines)
    assert n >= 1 and abs(len(timelines[0]) - len(timelines[1])) <= 1
    assert [e["fault"] for e in timelines[0][:n]] == [e["fault"] for e in timelines[1][:n]]
    for x, y in zip(timelines[0][:n], timelines[1][:n], strict=True):
        assert abs(_s(x["at"]) - _s(y["at"])) < 0.5, (x, y)


def _s(text: str) -> float:
    return float(str(text).rstrip("s"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_heals_collects_checks_and_exits_unknown(tmp_path, sig):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "squall.cli",
            "run",
            "--backend",
            "local",
            "--store",
            str(tmp_path),
            "--nodes",
            "3",
            "--time-limit",
            "120",
            "--nemesis",
            "none",
            "--seed",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        hist = None
        while hist is None or len(hist.read_text().splitlines()) < 100:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the run recorded no 100 ops within 60 s"
            time.sleep(0.2)
            hist = next(tmp_path.glob("*/*/history.jsonl"), None)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, err[-3000:]
    run = only_run(tmp_path)
    results = json.loads((run / "results.json").read_text())
    assert (results["valid"], results.get("interrupted")) == ("unknown", True)
    assert "interrupted" in results["run"]["why"]
    assert '<testcase classname="squall.checkers" name="run"' in (run / "results.xml").read_text()
    assert "unknown: the run was interrupted" in (run / "report.html").read_text()
    assert len(read_history(run / "history.jsonl")) >= 100
    assert signal.Signals(sig).name in err
    # Every node process is gone: none runs with this run's data directory.
    left = subprocess.run(["pgrep", "-f", str(run / "nodes-data")], capture_output=True, text=True)
    assert left.stdout.strip() == "", f"node processes left running: {left.stdout}"
