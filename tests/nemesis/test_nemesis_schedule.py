"""Schedules, the registry and the runner's bookkeeping (no containers).

The runner tests use a recording stand-in for the cluster: what is tested is
the runner's own code (ordering, history ops, the executed timeline, final
heal), not the faults' effect, which the docker tests check on real nodes.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from squall import registry as squall_registry
from squall.history import HistoryWriter, fault_windows, pair_ops
from squall.nemesis import registry
from squall.nemesis.base import NemesisError
from squall.nemesis.runner import NemesisRunner
from squall.nemesis.schedule import Event, Schedule, load_schedule, parse_duration


def test_a_typo_names_every_known_nemesis() -> None:
    with pytest.raises(NemesisError) as err:
        registry.parse_names("kill,partiton")
    assert str(err.value) == (
        'nemesis "partiton" is unknown; known: kill, pause, partition, '
        "link, disk-stall, clock, power-cut, failpoint"
    )


LOCAL = frozenset({"kill", "pause", "proxy-peers"})


def test_a_backend_refuses_faults_it_lacks_the_means_for_and_says_what_they_need() -> None:
    assert registry.refusals(["kill", "pause", "link", "partition"], LOCAL, "local") == []
    said = registry.refusals(["kill", "disk-stall", "clock"], LOCAL, "local")
    assert said == [
        "the local backend cannot run nemesis disk-stall: it needs fuse (it mounts a FUSE "
        "filesystem over the node's data directory; use --backend docker)",
        "the local backend cannot run nemesis clock: it needs preload (it preloads a clock "
        "shim into the node process; use --backend docker)",
    ]


def test_a_class_name_confers_no_capability() -> None:
    # Capability once came from the backend class's name: a class called
    # LocalEtcdCluster that declared only kill was let run a partition.
    class LocalEtcdCluster:
        supports = frozenset({"kill"})
        kind = "local-etcd"
        system = None

    with pytest.raises(NemesisError, match="local-etcd backend cannot run nemesis partition"):
        registry.check_supported(["partition"], LocalEtcdCluster)  # type: ignore[arg-type]


def test_a_fault_the_system_cannot_take_is_refused_with_its_reason() -> None:
    class Sys:
        name = "etcd-like"
        unsupported = {"clock": "a Go binary reads the clock without libc"}

    said = registry.refusals(["kill", "clock"], frozenset({"kill", "preload"}), "docker", Sys())  # type: ignore[arg-type]
    assert said == [
        "system etcd-like cannot take nemesis clock: a Go binary reads the clock without libc"
    ]


def test_docker_backend_accepts_every_fault() -> None:
    from squall.cluster.docker import DockerCluster

    assert registry.refusals(list(squall_registry.faults()), DockerCluster.supports, "docker") == []


def test_partitions_without_packet_drops_are_made_on_the_peer_proxies() -> None:
    faults = registry.build(["partition"], LOCAL)
    assert faults["partition"].link is faults["link"]  # type: ignore[attr-defined]
    from squall.cluster.docker import DockerCluster

    built = registry.build(["partition", "link"], DockerCluster.supports)
    assert built["partition"].link is None  # type: ignore[attr-defined]


def test_same_seed_gives_the_same_random_timeline() -> None:
    names = ["kill", "partition", "pause", "clock"]
    a = Schedule.random(names, seed=11, interval=10, time_limit=300)
    b = Schedule.random(names, seed=11, interval=10, time_limit=300)
    assert a == b and a.to_yaml() == b.to_yaml()
    assert len(a.events) >= 5
    assert Schedule.random(names, seed=12, interval=10, time_limit=300) != a


def test_random_timeline_stays_inside_the_limit_one_fault_at_a_time() -> None:
    s = Schedule.random(["kill", "partition"], seed=3, interval=2, time_limit=60)
    end = 0.0
    for ev in s.events:
        assert ev.duration is not None
        assert ev.at >= end, f"{ev} starts before the previous fault ended"
        end = ev.at + ev.duration
    assert end <= 60
    assert {e.fault for e in s.events} == {"kill", "partition"}


def test_yaml_timeline_parses_durations_and_options(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "seed: 5\nevents:\n"
        "  - {at: 10s, fault: partition, grudge: leader, for: 15s}\n"
        "  - {at: 500ms, fault: kill, target: minority, for: 1m}\n"
    )
    s = Schedule.from_yaml(path)
    assert s.seed == 5
    assert s.events[0] == Event(10.0, "partition", 15.0, {"grudge": "leader"})
    assert s.events[1] == Event(0.5, "kill", 60.0, {"target": "minority"})


def test_to_yaml_round_trips(tmp_path: Path) -> None:
    s = Schedule.random(["kill", "clock", "link"], seed=9, interval=3, time_limit=40)
    path = tmp_path / "t.yaml"
    path.write_text(s.to_yaml())
    assert Schedule.from_yaml(path) == s


@pytest.mark.parametrize(
    "text, message",
    [
        ("- {at: soon, fault: kill}\n", "is not a duration"),
        ("- {at: 1s, fault: partiton}\n", 'nemesis "partiton" is unknown'),
        ("- {fault: kill}\n", "missing at"),
        ("- {at: 1s, fault: kill, for: 10s}\n- {at: 5s, fault: kill, for: 1s}\n", "overlap"),
        ("just text\n", "expected a list of events"),
        ("- {at: 1s, fault: partition, grudges: leader}\n", "grudges is not one of them"),
    ],
)
def test_bad_schedule_files_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(NemesisError, match=message):
        Schedule.from_yaml(path)


def test_duration_units() -> None:
    assert parse_duration("250ms") == 0.25
    assert parse_duration("2m") == 120
    assert parse_duration(7) == 7.0


def test_load_schedule_prefers_a_replayed_runs_timeline(tmp_path: Path) -> None:
    (tmp_path / "nemesis-timeline.yaml").write_text(
        "seed: 1\nevents:\n  - {at: 1s, fault: kill, nodes: [n2], for: 2s}\n"
    )

    class Cfg:
        replay = str(tmp_path)
        nemesis = ["partition"]
        seed = 4

    s = load_schedule(Cfg())
    assert s.events == (Event(1.0, "kill", 2.0, {"nodes": ["n2"]}),)


class RecordingCluster:
    """Stands in for a backend: records calls, answers status like a healthy cluster."""

    supports = frozenset({"kill", "partition"})
    kind = "recording"

    def __init__(self) -> None:
        self.nodes = ["n1", "n2", "n3"]
        self.calls: list[tuple[str, str]] = []
        self.down: set[str] = set()

    def leader(self, timeout: float = 1.0) -> str:
        return "n1"

    def kill(self, node: str) -> None:
        self.calls.append(("kill", node))
        self.down.add(node)

    def start(self, node: str) -> None:
        self.calls.append(("start", node))
        self.down.discard(node)

    def is_running(self, node: str) -> bool:
        return node not in self.down

    def partition(self, grudge: Any) -> None:
        self.calls.append(("partition", str(sorted(grudge))))

    def heal(self) -> None:
        self.calls.append(("heal", ""))

    def wait_healthy(self, timeout: float = 30) -> None:
        assert not self.down, f"nodes {self.down} still down at the final heal"


def test_runner_records_invoke_and_completion_with_the_value_contract(tmp_path: Path) -> None:
    cluster = RecordingCluster()
    schedule = Schedule(
        (
            Event(0.0, "kill", 0.05, {"target": "leader"}),
            Event(0.1, "partition", None, {"grudge": "one"}),
        ),
        seed=2,
    )
    with HistoryWriter(tmp_path / "h.jsonl") as history:
        runner = NemesisRunner(cluster, schedule, history.record, rng=random.Random(1))  # type: ignore[arg-type]
        runner.start()
        assert runner.wait(10), "the schedule did not finish within 10 s"
        assert runner.active() == ["partition"]
        runner.final_heal(timeout=1)
        ops = history.ops
    assert [(o.type, o.f) for o in ops] == [
        ("invoke", "start-kill"),
        ("ok", "start-kill"),
        ("invoke", "stop-kill"),
        ("ok", "stop-kill"),
        ("invoke", "start-partition"),
        ("ok", "start-partition"),
        ("invoke", "stop-partition"),
        ("ok", "stop-partition"),
    ]
    assert all(o.process == "nemesis" for o in ops)
    assert ops[1].value["targets"] == ["n1"] and ops[1].value["leader"] == "n1"
    assert set(ops[5].value) >= {"targets", "leader", "grudge"}
    assert cluster.calls[:2] == [("kill", "n1"), ("start", "n1")]
    assert cluster.calls[-1] == ("heal", "")
    assert len(pair_ops(ops)) == 4
    assert [w["fault"] for w in fault_windows(ops)] == ["kill", "partition"]
    assert not any(w.get("unhealed") for w in fault_windows(ops))


def test_executed_timeline_pins_the_choices_made(tmp_path: Path) -> None:
    cluster = RecordingCluster()
    schedule = Schedule(
        (
            Event(0.0, "kill", 0.05, {"target": "random"}),
            Event(0.1, "partition", 0.05, {"grudge": "halves"}),
        ),
        seed=2,
    )
    with HistoryWriter(tmp_path / "h.jsonl") as history:
        runner = NemesisRunner(cluster, schedule, history.record, rng=random.Random(1))  # type: ignore[arg-type]
        runner.start()
        assert runner.wait(10), "the schedule did not finish within 10 s"
        runner.final_heal(timeout=1)
        ops = history.ops
    executed = runner.executed()
    killed = ops[1].value["targets"]
    assert executed.events[0].fault == "kill" and executed.events[0].params == {"nodes": killed}
    assert executed.events[1].params == {"grudge": ops[5].value["grudge"]}
    path = tmp_path / "timeline.yaml"
    path.write_text(runner.executed_yaml())
    assert Schedule.from_yaml(path) == executed


def test_a_failing_fault_completes_info_with_the_error(tmp_path: Path) -> None:
    cluster = RecordingCluster()
    schedule = Schedule((Event(0.0, "kill", 0.01, {"nodes": ["n9"]}),), seed=0)
    with HistoryWriter(tmp_path / "h.jsonl") as history:
        runner = NemesisRunner(cluster, schedule, history.record)  # type: ignore[arg-type]
        runner.start()
        assert runner.wait(10)
        runner.final_heal(timeout=1)
        start = history.ops[1]
    assert start.type == "info" and "n9" in (start.error or "")


def _targets_leader(ev: Event) -> bool:
    return any(ev.params.get(k) == "leader" for k in ("target", "grudge"))


def test_every_pair_of_random_faults_holds_exactly_one_leader_fault() -> None:
    names = ["kill", "pause", "partition", "link", "disk-stall", "clock", "power-cut"]
    for seed in range(50):
        events = Schedule.random(names, seed=seed, interval=2, time_limit=120).events
        pairs = [events[i : i + 2] for i in range(0, len(events) - 1, 2)]
        assert all(sum(map(_targets_leader, p)) == 1 for p in pairs), seed


def test_which_of_a_pair_hits_the_leader_is_drawn_from_the_seed() -> None:
    firsts = {
        _targets_leader(Schedule.random(["kill"], seed=s, interval=2, time_limit=20).events[0])
        for s in range(20)
    }
    assert firsts == {True, False}


def test_the_demo_schedule_always_has_a_leader_fault_and_another() -> None:
    # ./scripts/demo: kill,partition, 30 s, interval 5 s: the worst draw is
    # 7.5 s quiet + 7.5 s held + 7.5 s quiet + 7.5 s held = 30 s, so two faults fit.
    for seed in range(200):
        events = Schedule.random(["kill", "partition"], seed=seed, interval=5, time_limit=30).events
        assert {_targets_leader(e) for e in events} == {True, False}, seed


def test_a_fault_with_no_leader_entry_is_still_drawn_in_a_leader_slot() -> None:
    from squall.faults import FaultKind

    plain = FaultKind(name="plain", factory="squall.nemesis.process:Kill", menu=({},))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(squall_registry, "fault", lambda name: plain)
        mp.setattr(squall_registry, "faults", lambda: {"plain": plain})
        events = Schedule.random(["plain"], seed=1, interval=2, time_limit=20).events
    assert len(events) >= 2


def test_a_random_schedule_may_draw_failpoints_with_the_point_left_to_the_run() -> None:
    events = Schedule.random(["failpoint"], seed=3, interval=5, time_limit=60).events
    assert events and all(e.fault == "failpoint" and e.params["point"] == "random" for e in events)
