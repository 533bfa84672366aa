"""Every fault on real containers: it takes effect, and it heals completely.

Two small clusters per module run: one configured for clock skew and disk
stalls (the clock shim + the FUSE wrapper) that also serves kill, pause and
partition; one whose peers talk through Toxiproxy for link faults.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from squall.cluster.base import ClusterSpec
from squall.cluster.docker import DockerCluster
from squall.history import NEMESIS, Op
from squall.nemesis.base import Fault
from squall.nemesis.runner import NemesisRunner
from squall.nemesis.schedule import Event, Schedule
from tests.aurora import AURORA, node_url, status
from tests.nemesis.conftest import Running
from tests.store.helpers import wait_for as store_wait_for

pytestmark = pytest.mark.docker


def wait_for(cond: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    return store_wait_for(what, cond, timeout, every=0.1)


def start(fault: Fault, **params: Any) -> Op:
    kind = fault.kind
    done = fault.invoke(Op(process=NEMESIS, type="invoke", f=f"start-{kind}", value=params))
    assert done.type == "ok", f"start-{kind} failed: {done.error}"
    assert {"targets", "leader"} <= set(done.value), done.value
    return done


def stop(fault: Fault) -> Op:
    done = fault.invoke(Op(process=NEMESIS, type="invoke", f=f"stop-{fault.kind}", value={}))
    assert done.type == "ok", f"stop-{fault.kind} failed: {done.error}"
    return done


def healed(cluster: DockerCluster) -> None:
    cluster.wait_healthy(60)
    assert all(cluster.is_running(n) for n in cluster.nodes)


def put(cluster: DockerCluster, node: str, key: str, value: Any, timeout: float = 3.0) -> int | str:
    try:
        r = requests.put(
            f"{node_url(cluster, node)}/kv/{key}", json={"value": value}, timeout=timeout
        )
        return r.status_code
    except requests.RequestException as exc:
        return type(exc).__name__


def leader_put(cluster: DockerCluster, key: str, value: Any) -> float:
    """Writes through the current leader; returns how long the commit took."""
    leader = cluster.leader(10)
    assert leader, "no leader"
    started = time.monotonic()
    assert put(cluster, leader, key, value, timeout=10) == 200
    return time.monotonic() - started


def make_cluster(faults: list[str], nodes: int = 3) -> tuple[DockerCluster, dict[str, Fault]]:
    spec = ClusterSpec(
        name=f"sqnem-{uuid.uuid4().hex[:8]}", nodes=nodes, options={"snapshot_every": 0}
    )
    schedule = Schedule(tuple(Event(0, f, 1, {}) for f in faults))
    cluster = DockerCluster(spec, AURORA)
    return cluster, schedule.prepare(cluster)


@pytest.fixture(scope="module")
def fused(running: Running) -> Iterator[tuple[DockerCluster, dict[str, Fault]]]:
    with running(*make_cluster(["kill", "pause", "partition", "clock", "disk-stall"])) as made:
        yield made  # type: ignore[misc]


@pytest.fixture(scope="module")
def linked(running: Running) -> Iterator[tuple[DockerCluster, dict[str, Fault]]]:
    with running(*make_cluster(["link", "partition"])) as made:
        yield made  # type: ignore[misc]


def test_killed_node_is_unreachable_then_back(fused: Any) -> None:
    cluster, faults = fused
    done = start(faults["kill"], nodes=["n2"])
    assert done.value["targets"] == ["n2"]
    assert status(cluster, "n2") is None and not cluster.is_running("n2")
    stop(faults["kill"])
    wait_for(lambda: status(cluster, "n2"), "n2 answering after the restart")
    healed(cluster)


def test_paused_node_does_not_answer_then_does(fused: Any) -> None:
    cluster, faults = fused
    start(faults["pause"], nodes=["n3"])
    assert status(cluster, "n3", timeout=1.0) is None, "a paused node answered"
    assert cluster.is_running("n3")
    stop(faults["pause"])
    wait_for(lambda: status(cluster, "n3"), "n3 answering after SIGCONT")
    healed(cluster)


@pytest.mark.parametrize("setup", ["fused", "linked"])
def test_partitioned_minority_cannot_commit_while_the_majority_does(
    setup: str, request: pytest.FixtureRequest
) -> None:
    # "linked": peers talk through Toxiproxy, so the cut must be made there too.
    cluster, faults = request.getfixturevalue(setup)
    old = cluster.leader(10)
    done = start(faults["partition"], grudge="leader")
    assert done.value["leader"] == old
    assert done.value["grudge"][old] == sorted(set(cluster.nodes) - {old})
    majority = [n for n in cluster.nodes if n != old]

    def new_leader() -> str | None:
        views = [status(cluster, n) or {} for n in majority]
        return next((v["id"] for v in views if v.get("role") == "leader"), None)

    fresh = wait_for(new_leader, "a leader elected by the majority side")
    assert put(cluster, fresh, "part-majority", 1) == 200
    assert put(cluster, old, "part-minority", 1) != 200, "the isolated old leader committed"
    stop(faults["partition"])
    healed(cluster)
    assert leader_put(cluster, "part-after", 2) >= 0


def test_skewed_node_clock_differs_and_is_reset(fused: Any) -> None:
    cluster, faults = fused
    clock = faults["clock"]
    done = start(clock, nodes=["n1"], offset=120)
    assert done.value["offset"] == 120
    assert abs(clock.node_time("n1") - time.time() - 120) < 5
    assert abs(clock.node_time("n2") - time.time()) < 5, "the skew leaked to another node"
    stop(clock)
    assert abs(clock.node_time("n1") - time.time()) < 5
    healed(cluster)


# Two threads handing the GIL over at the node's switch interval, timed inside
# the container; prints the seconds it took.
GIL_SCRIPT = """
import sys, threading, time
sys.setswitchinterval(0.0005)
def spin():
    x = 0
    for _ in range(2_000_000):
        x += 1
t0 = time.perf_counter()
threads = [threading.Thread(target=spin) for _ in range(2)]
[t.start() for t in threads]
[t.join() for t in threads]
print(time.perf_counter() - t0)
"""


def test_a_node_under_the_clock_fault_runs_threads_as_fast_as_a_plain_one(fused: Any) -> None:
    # libfaketime wrapped pthread_cond_timedwait: every GIL hand-off read its
    # offset file, two threads ran 10x slower, and the scheduler workload
    # starved from the first second of any run with the clock fault.
    from squall.nemesis.clock import ENV

    cluster, _faults = fused

    def seconds(prefix: list[str]) -> float:
        rc, out = cluster.exec("n2", [*prefix, "python3", "-c", GIL_SCRIPT], timeout=60)
        assert rc == 0, out
        return float(out.strip().splitlines()[-1])

    plain = min(seconds([]) for _ in range(2))
    shimmed = min(seconds(["env", *ENV.split()]) for _ in range(2))
    assert shimmed < 2 * plain, (
        f"threads took {shimmed:.2f}s under the clock shim, {plain:.2f}s without"
    )


def test_strobed_clock_flips_between_skewed_and_true(fused: Any) -> None:
    cluster, faults = fused
    clock = faults["clock"]
    start(clock, nodes=["n3"], offset=100, mode="strobe", period=300)
    seen: set[int] = set()
    deadline = time.monotonic() + 20
    while seen != {0, 100} and time.monotonic() < deadline:
        seen.add(round((clock.node_time("n3") - time.time()) / 50) * 50)
    stop(clock)
    assert seen == {0, 100}, f"offsets seen while strobing: {sorted(seen)}"
    assert abs(clock.node_time("n3") - time.time()) < 5
    healed(cluster)


def test_snapshot_during_a_disk_stall_waits_for_the_release(fused: Any) -> None:
    cluster, faults = fused
    for i in range(20):
        leader_put(cluster, f"snap-{i}", "x" * 200)
    stall_seconds = 3.0
    done = start(faults["disk-stall"], target="leader", snapshot="trigger", seconds=stall_seconds)
    node = done.value["targets"][0]
    stalled_at = time.monotonic()
    # Holding the fault for its duration is the behaviour under test.
    time.sleep(stall_seconds)
    released = stop(faults["disk-stall"])
    assert time.monotonic() - stalled_at >= stall_seconds
    snap = released.value["snapshots"][node]
    assert snap.get("status") == 200, f"the snapshot did not complete: {snap}"
    assert snap["took_s"] >= stall_seconds, f"the snapshot did not wait for the stall: {snap}"
    assert snap["after_release_s"] >= 0, f"the snapshot finished before the release: {snap}"
    healed(cluster)


def test_eio_mode_fails_fsync_and_heals(fused: Any) -> None:
    cluster, faults = fused
    probe = (
        "import os; f = open('/var/lib/squall/eio-probe', 'wb'); f.write(b'x'); f.flush(); "
        "os.fsync(f.fileno()); print('synced')"
    )
    start(faults["disk-stall"], nodes=["n2"], mode="eio", snapshot=False)
    rc, out = cluster.exec("n2", ["python3", "-c", probe])
    assert rc != 0 and "Errno 5" in out, f"fsync did not fail with EIO: {out}"
    stop(faults["disk-stall"])
    rc, out = cluster.exec("n2", ["python3", "-c", probe])
    assert rc == 0 and "synced" in out, out
    healed(cluster)


def test_latency_toxic_raises_commit_round_trip(linked: Any) -> None:
    cluster, faults = linked
    link = faults["link"]
    before = min(leader_put(cluster, f"lat-{i}", i) for i in range(3))
    done = start(link, toxic="latency", target="all", attributes={"latency": 100, "jitter": 0})
    assert done.value["toxic"]["attributes"]["latency"] == 100
    slowed = min(leader_put(cluster, f"lat-slow-{i}", i) for i in range(3))
    # A commit needs the leader's append to reach a follower and the answer to
    # come back: two proxied hops of 100 ms each (more would starve heartbeats
    # past the election timeout and measure elections instead).
    assert slowed >= 0.2 > before, f"commit took {before:.3f}s before, {slowed:.3f}s with latency"
    stop(link)
    proxies = requests.get(f"{link.server.api}/proxies", timeout=5).json()
    assert all(p["toxics"] == [] for p in proxies.values())
    healed(cluster)


def test_client_link_latency_slows_client_requests(linked: Any) -> None:
    cluster, faults = linked
    link = faults["link"]
    url = f"http://{link.client_address('n1')}/health"

    def rtt() -> float:
        started = time.monotonic()
        assert requests.get(url, timeout=10).status_code == 200
        return time.monotonic() - started

    before = min(rtt() for _ in range(3))
    start(
        link,
        toxic="latency",
        nodes=["n1"],
        links="clients",
        attributes={"latency": 300, "jitter": 0},
    )
    slowed = min(rtt() for _ in range(3))
    stop(link)
    assert slowed >= 0.3 > before, f"client rtt {before:.3f}s before, {slowed:.3f}s with latency"
    healed(cluster)


def test_runner_heals_everything_it_started_on_final_heal(fused: Any) -> None:
    cluster, faults = fused
    schedule = Schedule(
        (
            Event(0.0, "kill", None, {"nodes": ["n3"]}),
            Event(0.0, "clock", None, {"nodes": ["n1"], "offset": -30}),
        ),
        seed=1,
    )
    ops: list[Op] = []
    runner = NemesisRunner(
        cluster,
        schedule,
        lambda op: ops.append(op) or op,
        faults={k: faults[k] for k in ("kill", "clock")},
    )
    runner.start()
    assert runner.wait(60), "the schedule did not run within 60 s"
    assert runner.active() == ["clock", "kill"]
    runner.final_heal(timeout=60)
    assert runner.active() == []
    assert [o.f for o in ops if o.type != "invoke"].count("stop-kill") == 1
    assert abs(faults["clock"].node_time("n1") - time.time()) < 5
    healed(cluster)


def test_cleanup_heals_faults_left_inside_running_containers(fused: Any) -> None:
    from squall.nemesis.cleanup import heal_containers

    cluster, faults = fused
    start(faults["partition"], grudge={"n1": ["n2", "n3"]})
    start(faults["clock"], nodes=["n2"], offset=-90)
    assert not cluster.reachability()[("n1", "n2")]
    healed_names = heal_containers(cluster.spec.name)
    assert len(healed_names) == len(cluster.nodes)
    assert all(cluster.reachability().values()), "iptables rules survived the cleanup"
    assert abs(faults["clock"].node_time("n2") - time.time()) < 5, "the clock stayed skewed"
    stop(faults["partition"])
    stop(faults["clock"])
    healed(cluster)


def test_a_leader_whose_disk_stalls_steps_down_and_writes_go_on(fused: Any) -> None:
    # It still heartbeats, so no follower times out: only the leader itself can
    # see that it cannot write (system.diskwatch). Without the step-down, writes
    # waited for the whole stall (5.2 s in the proof matrix). A leader with no
    # write in flight has nothing stuck and rightly keeps leading, so a client
    # writes to it as soon as the stall starts (that write hangs, as it must).
    cluster, faults = fused
    leader_put(cluster, "stall-before", 1)
    done = start(faults["disk-stall"], target="leader", snapshot=False, seconds=6)
    stalled = done.value["targets"][0]
    t0 = time.monotonic()
    stuck = threading.Thread(
        target=put, args=(cluster, stalled, "stall-stuck", 0, 8.0), daemon=True
    )
    stuck.start()
    try:
        others = [n for n in cluster.nodes if n != stalled]

        def fresh() -> str | None:
            views = [status(cluster, n, timeout=1.0) or {} for n in others]
            return next((v["id"] for v in views if v.get("role") == "leader"), None)

        new = wait_for(fresh, "a new leader while the old one's disk is stalled", timeout=5)
        assert put(cluster, new, "stall-during", 2, timeout=5) == 200
        took = time.monotonic() - t0
        assert took < 3.0, f"a write under the old leader's disk stall took {took:.1f}s"
        view = status(cluster, stalled, timeout=1.0) or {}
        assert view.get("role") != "leader", f"the stalled node still says it leads: {view}"
    finally:
        stop(faults["disk-stall"])
        stuck.join(10)
    healed(cluster)
    assert leader_put(cluster, "stall-after", 3) >= 0
