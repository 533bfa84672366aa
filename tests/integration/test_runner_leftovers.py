"""A runner killed with SIGKILL leaves containers behind; the next squall
command removes them (and only them: the owner must be dead)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

docker = pytest.importorskip("docker")

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _ours(client, store: Path) -> list:
    """Containers whose runner ran in this test's store directory."""
    out = []
    # sparse: the list's own labels, no inspect of each container, which
    # raced the reaping under test (a container removed between the list and
    # its inspect answered 404 and failed one CI run).
    for c in client.containers.list(all=True, filters={"label": "squall.run"}, sparse=True):
        owner = (c.attrs.get("Labels") or {}).get("squall.owner_pid")
        if owner and owner == str(_ours.pid):  # type: ignore[attr-defined]
            out.append(c)
    return out


def test_the_next_command_reaps_a_killed_runners_cluster(tmp_path):
    client = docker.from_env(version="auto")
    store = tmp_path / "store"
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "squall.cli",
            "run",
            "--backend",
            "docker",
            "--nodes",
            "3",
            "--workload",
            "register",
            "--nemesis",
            "none",
            "--time-limit",
            "120",
            "--store",
            str(store),
            "--seed",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _ours.pid = runner.pid  # type: ignore[attr-defined]
    try:
        deadline = time.monotonic() + 120
        while len(_ours(client, store)) < 3:
            if runner.poll() is not None:
                out = runner.stdout.read().decode(errors="replace") if runner.stdout else ""
                pytest.fail(
                    f"the runner exited ({runner.returncode}) before its cluster was up:\n{out[-3000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail("the runner's 3 containers never appeared within 120 s")
            time.sleep(0.5)
        # The history file exists and is being written while the run goes on: a few
        # ops in (killed at its first line, nothing would be left to read back).
        history = next(store.glob("*/*/history.jsonl"), None)
        deadline = time.monotonic() + 60
        while history is None or history.read_bytes().count(b"\n") < 5:
            if time.monotonic() > deadline:
                pytest.fail("no operation was recorded within 60 s of the cluster starting")
            time.sleep(0.2)
            history = next(store.glob("*/*/history.jsonl"), None)
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait(10)
        assert len(_ours(client, store)) == 3, "SIGKILL should have left the containers behind"

        run_dir = history.parent
        # The next command that starts clusters reaps them (report, check and serve
        # never touch Docker, so they start fast); `cluster status` is the lightest.
        proc = subprocess.run(
            [sys.executable, "-m", "squall.cli", "cluster", "status"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "removed leftovers" in proc.stderr, proc.stderr
        assert _ours(client, store) == []
        report = subprocess.run(
            [sys.executable, "-m", "squall.cli", "report", str(run_dir)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (run_dir / "report.html").exists(), report.stderr
        # What the killed run recorded is still readable, up to the last full line.
        from squall.history import iter_history

        lines = history.read_text().splitlines()
        complete = "\n".join(lines[:-1]) + "\n"
        history.write_text(complete)
        assert len(list(iter_history(history))) == len(lines) - 1 > 0
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
        for c in _ours(client, store):
            c.remove(force=True, v=True)
        for n in client.networks.list(filters={"label": "squall.run"}):
            if n.attrs.get("Labels", {}).get("squall.owner_pid") == str(runner.pid):
                n.remove()
