"""The ssh backend on five real sshd "hosts" (containers, each its own network namespace),
driven only over SSH: the store and etcd are each valid under kills, pauses and
partitions and a stale-read bug of each is caught, the backend never calls a Docker
engine, and nothing of a run is left on a host, after a run and after a runner killed
with SIGKILL followed by ``squall hosts clean``."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from squall.cluster.hosts import leftovers, prepare
from squall.cluster.inventory import load_inventory
from squall.cluster.remote import Remote
from squall.history import read_history
from squall.run import run
from squall.run.config import Test as SquallTest
from squall.run.runner import EXIT_RUN_FAILED
from squall.systems.etcd.system import EtcdSystem
from squall.util import wait_until
from tests.ssh.sshhosts import Hosts, ssh_hosts

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hosts() -> Iterator[Hosts]:
    with ssh_hosts(5) as h:
        yield h


class Tripwire:
    """A Docker engine address that counts every connection made to it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.calls = 0
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.calls += 1
            conn.close()


@pytest.fixture
def no_docker(monkeypatch: pytest.MonkeyPatch) -> Iterator[Tripwire]:
    wire = Tripwire()
    monkeypatch.setenv("DOCKER_HOST", wire.url)
    yield wire
    wire.sock.close()


def nothing_left(inventory: Path) -> dict[str, dict[str, list]]:
    """Per host, whatever of any run is still there (empty lists when clean)."""
    found = leftovers(load_inventory(inventory))
    return {n: {k: v for k, v in got.items() if v} for n, got in found.items() if any(got.values())}


def ssh_test(hosts: Hosts, tmp_path: Path, **kwargs: object) -> SquallTest:
    base = {
        "backend": "ssh",
        "inventory": str(hosts.inventory),
        "workload": "register",
        "time_limit": 25.0,
        "seed": 19,
        "store": str(tmp_path / "store"),
    }
    return SquallTest(**{**base, **kwargs})  # type: ignore[arg-type]


def results(tmp_path: Path) -> dict:
    import json

    return json.loads((tmp_path / "store" / "latest" / "results.json").read_text())


def run_clean(
    cfg: SquallTest, hosts: Hosts, tmp_path: Path, no_docker: Tripwire, code: int
) -> dict:
    """Runs ``cfg``, which must exit ``code`` with no Docker call and nothing left on
    the hosts; returns its results."""
    got_code = run(cfg)
    got = results(tmp_path)
    assert got_code == code, {k: v.get("why") for k, v in got.items() if isinstance(v, dict)}
    assert no_docker.calls == 0, "the ssh backend talked to a Docker engine"
    assert nothing_left(hosts.inventory) == {}
    return got


def injected(tmp_path: Path) -> set[str]:
    """The faults the run's nemesis started."""
    history = read_history(tmp_path / "store" / "latest" / "history.jsonl")
    return {op.f for op in history if op.is_nemesis and op.type == "ok"}


def test_the_store_is_valid_under_kills_pauses_and_partitions_with_no_docker_call(
    hosts: Hosts, tmp_path: Path, no_docker: Tripwire
) -> None:
    cfg = ssh_test(hosts, tmp_path, nemesis=["kill", "pause", "partition"], nemesis_interval=4.0)
    run_clean(cfg, hosts, tmp_path, no_docker, code=0)
    faults = injected(tmp_path)
    assert faults & {"start-kill", "start-pause", "start-partition"}, faults


def test_a_stale_read_bug_is_caught_on_ssh_hosts(
    hosts: Hosts, tmp_path: Path, no_docker: Tripwire
) -> None:
    schedule = ROOT / "suites" / "schedules" / "isolate-leader.yaml"
    # 34 s: the schedule's third cut starts at 25 s, and a run refuses events it would never fire.
    cfg = ssh_test(
        hosts, tmp_path, nemesis_file=str(schedule), bugs=["stale-read"], time_limit=34.0
    )
    got = run_clean(cfg, hosts, tmp_path, no_docker, code=1)
    assert got["linearizable"]["valid"] is False


# etcd on the same hosts (Debian's etcd-server, baked in as prepare installs it). Its
# failover bound is the etcd suite's 3 s (suites/etcd.yaml argues it: after a leader
# cut the members left may split their votes once on this loaded machine).
ETCD = {"system": "etcd", "failover_bound": 3.0}


def test_etcd_is_valid_under_kills_pauses_and_partitions_with_no_docker_call(
    hosts: Hosts, tmp_path: Path, no_docker: Tripwire
) -> None:
    # At interval 3 s seed 19's schedule is kill, partition, pause, kill inside the 25 s
    # (Schedule.random): each of the three faults is injected at least once.
    cfg = ssh_test(
        hosts, tmp_path, **ETCD, nemesis=["kill", "pause", "partition"], nemesis_interval=3.0
    )
    got = run_clean(cfg, hosts, tmp_path, no_docker, code=0)
    faults = injected(tmp_path)
    assert faults >= {"start-kill", "start-pause", "start-partition"}, faults
    # Every member, restarted ones included, ended on one hash at one revision.
    assert got["fidelity"]["valid"] is True, got["fidelity"]


def test_an_etcd_stale_read_bug_is_caught_on_ssh_hosts(
    hosts: Hosts, tmp_path: Path, no_docker: Tripwire
) -> None:
    schedule = ROOT / "suites" / "schedules" / "etcd-isolate-leader.yaml"
    # 36 s, as in suites/etcd.yaml: the third leader cut starts at 25 s and lasts 8.
    cfg = ssh_test(
        hosts, tmp_path, **ETCD, nemesis_file=str(schedule), bugs=["stale-read"], time_limit=36.0
    )
    got = run_clean(cfg, hosts, tmp_path, no_docker, code=1)
    assert got["linearizable"]["valid"] is False


def test_a_running_packaged_etcd_is_refused_and_prepare_stops_and_disables_it(
    hosts: Hosts, tmp_path: Path
) -> None:
    # What installing etcd-server does on a VM: Debian's own etcd starts on
    # 127.0.0.1:2379/2380, the ports a member binds. These hosts have no systemd,
    # so it is the package's sysv script, as on a VM without systemd.
    inventory = load_inventory(hosts.inventory)
    remote = Remote(inventory)
    remote.connect(["n2"])
    try:
        rc, out = remote.run("n2", "service etcd start", root=True, timeout=60)
        assert rc == 0, out
        code = run(ssh_test(hosts, tmp_path, **ETCD, time_limit=5.0))
        assert code == EXIT_RUN_FAILED
        said = " ".join(results(tmp_path)["run_errors"])
        assert re.search(
            r"n2 .* runs the packaged service etcd.*squall hosts prepare .* --system etcd", said
        ), said
        assert nothing_left(hosts.inventory) == {}
        done = prepare(inventory, EtcdSystem(), lambda _msg: None)
        assert "stopped and disabled service etcd" in done["n2"], done
        rc, _ = remote.run("n2", "service etcd status", root=True)
        assert rc != 0, "Debian's etcd still runs after prepare"
        rc, out = remote.run("n2", "ls /etc/rc2.d", root=True)
        assert b"S01etcd" not in out, out  # disabled: a reboot would not start it again
    finally:
        remote.run("n2", "service etcd stop; true", root=True, timeout=60)
        remote.close()


HOLD = """
seed: 3
events:
  - {at: 1s, fault: partition, grudge: {n1: [n2, n3], n2: [n1], n3: [n1]}, for: 300s}
  - {at: 290s, fault: disk-stall, target: random, snapshot: false, for: 1s}
"""


def test_a_runner_killed_outright_leaves_nothing_after_hosts_clean(
    hosts: Hosts, tmp_path: Path
) -> None:
    schedule = tmp_path / "hold.yaml"
    schedule.write_text(HOLD)
    runner = subprocess.Popen(
        [
            *(sys.executable, "-m", "squall.cli", "run", "--backend", "ssh"),
            *("--inventory", str(hosts.inventory), "--nemesis", str(schedule)),
            *("--time-limit", "300", "--store", str(tmp_path / "store"), "--seed", "4"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=ROOT,
    )
    try:
        # The partition holds, and the disk-stall layer is mounted under every node.
        held = wait_until(
            lambda: (
                (left := nothing_left(hosts.inventory))
                and sum(len(h.get("mounts", [])) for h in left.values()) >= 5
                and any("DROP" in r for h in left.values() for r in h.get("rules", []))
                and left
            ),
            120,
            "the run's partition and FUSE mounts on the hosts",
            every=1.0,
        )
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait(10)
        time.sleep(1)
        assert set(nothing_left(hosts.inventory)) == set(held), "SIGKILL should leave the run"
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait(10)
        proc = subprocess.run(
            [sys.executable, "-m", "squall.cli", "hosts", "clean", str(hosts.inventory)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
    assert proc.returncode == 0, proc.stderr
    assert nothing_left(hosts.inventory) == {}


def test_the_tripwire_sees_a_docker_call(no_docker: Tripwire) -> None:
    # The check above can fail: any Docker client made meanwhile connects here.
    from squall.cluster.base import ClusterError
    from squall.cluster.dockerutil import docker_client

    with pytest.raises(ClusterError):
        docker_client()
    assert no_docker.calls >= 1
