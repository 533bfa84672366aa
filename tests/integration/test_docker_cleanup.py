"""What a runner killed with SIGKILL leaves behind is found and removed; live runs are not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from squall.cluster.cleanup import cleanup_leftovers, owner_alive, run_objects
from squall.cluster.docker import LABEL_CREATED, LABEL_OWNER, LABEL_RUN, LABEL_TMP, docker_client

pytestmark = pytest.mark.docker

RUNNER = textwrap.dedent("""
    import sys, time
    from squall.cluster.base import ClusterSpec
    from squall.cluster.docker import DockerCluster
    from squall.systems.aurora.system import AuroraSystem
    c = DockerCluster(ClusterSpec(name=sys.argv[1], nodes=3), AuroraSystem())
    c.up()
    print("UP", flush=True)
    sys.stdin.read()  # until killed
""")


def test_cleanup_removes_everything_a_sigkilled_runner_left(tmp_path: Path) -> None:
    run = f"test-cleanup-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER, run],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert runner.stdout is not None
        line = runner.stdout.readline()  # bounded by up()'s own health timeout
        if line.strip() != "UP":
            raise AssertionError(
                f"the runner never brought its cluster up:\n{line}" + runner.stdout.read()[-3000:]
            )
        tmpdir = docker_client().networks.get(f"squall-{run}").attrs["Labels"][LABEL_TMP]
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=10)
        assert len(run_objects(run)) == 3 + 1 + 3, "SIGKILL should have left the cluster behind"
        removed = cleanup_leftovers(only_run=run)
        assert run_objects(run) == [], "cleanup left labelled objects"
        assert f"squall-{run}-n1" in removed and f"squall-{run}" in removed
        assert not Path(tmpdir).exists(), "cleanup left the node config directory"
    finally:
        if runner.poll() is None:
            runner.kill()
        cleanup_leftovers(only_run=run)


def test_cleanup_leaves_objects_of_a_live_owner_alone() -> None:
    run = f"test-cleanup-live-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    labels = {LABEL_RUN: run, LABEL_OWNER: str(os.getpid()), LABEL_CREATED: str(int(time.time()))}
    network = docker_client().networks.create(f"squall-{run}", labels=labels)
    try:
        assert cleanup_leftovers(only_run=run) == []
        assert run_objects(run) == [f"squall-{run}"]
    finally:
        network.remove()


def test_a_reused_pid_does_not_count_as_the_owner() -> None:
    # Our own pid, but "created" long before this process started: another process's object.
    labels = {LABEL_OWNER: str(os.getpid()), LABEL_CREATED: str(int(time.time()) - 10**6)}
    assert not owner_alive(labels)
    assert owner_alive({**labels, LABEL_CREATED: str(int(time.time()))})
