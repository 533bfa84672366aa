"""Bounded failover on hand-written histories (times in seconds)."""

from __future__ import annotations

from synth_run import Hist, ctx

from squall.checkers.failover import check_failover

ISOLATE_N1 = {"n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"]}


def steady(h: Hist, t0: float, t1: float, step: float = 0.1, process: int = 0) -> Hist:
    """One write and one read every ``step`` seconds, all acknowledged, each 10 ms long,
    answered by n5 (no test's fault targets it)."""
    t = t0
    while t < t1:
        h.op(process, "write", ["k", 1], t, t + 0.01, node="n5")
        h.op(process + 1, "read", ["k", None], t, t + 0.01, result=["k", 1], node="n5")
        t += step
    return h


def outage(h: Hist, t0: float, t1: float) -> Hist:
    """Ops invoked in [t0, t1) all fail fast: no leader."""
    t, p = t0, 50
    while t < t1:
        h.op(p, "write", ["k", 2], t, t + 0.01, "fail")
        h.op(p + 1, "read", ["k", None], t, t + 0.01, "fail")
        t += 0.1
    return h


def leader_kill(recover_after: float, kill_at: float = 5.0) -> Hist:
    h = Hist().fault("kill", kill_at, kill_at + 8.0, leader="n1", targets=["n1"])
    steady(h, 0.0, kill_at)
    outage(h, kill_at, kill_at + recover_after)
    return steady(h, kill_at + recover_after, 20.0)


def test_writes_back_within_the_bound_is_valid_with_recovery_times() -> None:
    res = check_failover(ctx(leader_kill(recover_after=1.0), failover_bound=2))
    assert res["valid"] is True
    row = res["faults"][0]
    assert row["judged"] is True and row["ok"] is True
    assert 1.0 <= row["write_recovery_s"] <= 1.05 and 1.0 <= row["read_recovery_s"] <= 1.05


def test_a_five_second_failover_against_a_two_second_bound_is_invalid() -> None:
    res = check_failover(ctx(leader_kill(recover_after=5.0), failover_bound=2))
    assert res["valid"] is False
    assert res["faults"][0]["ok"] is False
    assert "kill at 5.0s" in res["why"] and "5.01s > bound 2s" in res["why"]


def test_a_cluster_that_never_recovers_is_invalid() -> None:
    h = Hist().fault("kill", 5.0, None, leader="n1", targets=["n1"])
    outage(steady(h, 0.0, 5.0), 5.0, 20.0)
    res = check_failover(ctx(h))
    assert res["valid"] is False
    assert res["faults"][0]["write_recovery_s"] is None
    assert "no write was ever acknowledged again" in res["why"]


def test_ops_in_flight_before_the_fault_do_not_count_as_recovery() -> None:
    h = Hist().fault("kill", 5.0, 9.0, leader="n1", targets=["n1"])
    h.op(7, "write", ["k", 3], 4.99, 5.5)  # invoked before, acked after the kill
    outage(h, 5.0, 8.0)
    steady(h, 8.0, 10.0)
    res = check_failover(ctx(h))
    assert res["faults"][0]["write_recovery_s"] >= 3.0


def test_acks_from_the_killed_node_as_its_signal_lands_are_not_recovery() -> None:
    h = Hist().fault("kill", 5.0, 9.0, leader="n1", targets=["n1"])
    h.op(7, "write", ["k", 3], 5.001, 5.003, node="n1")  # the dying leader, 2 ms in
    outage(h, 5.0, 6.0)
    steady(h, 6.0, 10.0)
    res = check_failover(ctx(h))
    assert res["faults"][0]["write_recovery_s"] >= 1.0


def test_once_restarted_the_nodes_a_power_cut_stopped_serve_again() -> None:
    # Every node was cut: after the window only they can answer, and that is recovery.
    h = Hist().fault("power-cut", 5.0, 9.0, leader="n1", targets=["n1", "n2", "n3", "n4", "n5"])
    outage(steady(h, 0.0, 5.0), 5.0, 9.5)
    steady(h, 9.5, 12.0)
    res = check_failover(ctx(h, failover_bound=2))
    assert res["valid"] is True
    assert 0.5 <= res["faults"][0]["write_recovery_s"] <= 0.55


def test_a_follower_kill_during_which_writes_stall_past_the_bound_is_invalid() -> None:
    h = Hist().fault("kill", 5.0, 8.0, leader="n1", targets=["n2"])
    steady(h, 0.0, 5.5)
    outage(h, 5.5, 8.0)  # 2.5 s without an ack, the leader still up: a stall, not a failover
    steady(h, 8.0, 12.0)
    res = check_failover(ctx(h, failover_bound=2))
    row = res["faults"][0]
    assert row["class"] == "service"
    assert row["ok"] is False
    assert 2.4 <= row["write_gap_s"] <= 2.5
    assert "writes stalled for 2.4" in res["why"]


def test_a_follower_kill_the_majority_serves_through_is_judged_valid() -> None:
    h = Hist().fault("kill", 5.0, 8.0, leader="n1", targets=["n2"])
    steady(h, 0.0, 12.0)
    res = check_failover(ctx(h, failover_bound=2))
    row = res["faults"][0]
    assert (row["class"], row["judged"], row["ok"]) == ("service", True, True)
    assert row["write_gap_s"] <= 0.11 and row["read_gap_s"] <= 0.11


def test_a_service_fault_is_not_blamed_for_a_leader_kill_inside_it() -> None:
    # A clock skew on a follower spans a leader kill that takes 1.5 s to fail over:
    # the kill answers for that outage, within its bound; the skew did not stall service.
    h = Hist().fault("clock", 2.0, 12.0, leader="n1", targets=["n2"])
    h.fault("kill", 5.0, 9.0, leader="n1", targets=["n1"])
    outage(steady(h, 0.0, 5.0), 5.0, 6.5)
    steady(h, 6.5, 14.0)
    res = check_failover(ctx(h, failover_bound=2))
    assert [r["class"] for r in res["faults"]] == ["service", "leader"]
    assert res["valid"] is True
    assert res["faults"][0]["write_gap_s"] <= 0.11


def test_a_kind_not_tried_while_a_service_fault_acted_is_unjudged_and_says_so() -> None:
    h = Hist().fault("pause", 5.0, 8.0, leader="n1", targets=["n3"])
    for t in range(120):
        h.op(0, "add", t, t / 10, t / 10 + 0.01, node="n1")
    h.op(9, "read", None, 20.0, 20.1, result=[], node="n1")
    res = check_failover(ctx(h, write_fs=["add"], read_fs=["read"]))
    row = res["faults"][0]
    assert row["judged"] is True
    assert row["unjudged"] == {"read": "no read was attempted while it acted"}


def test_a_partition_isolating_the_leader_is_judged() -> None:
    h = Hist().fault("partition", 5.0, 10.0, leader="n1", targets=["n1"], grudge=ISOLATE_N1)
    outage(steady(h, 0.0, 5.0), 5.0, 9.0)
    steady(h, 9.0, 12.0)
    res = check_failover(ctx(h, failover_bound=2))
    assert res["faults"][0]["hits_leader"] is True
    assert res["valid"] is False


def test_a_partition_leaving_the_leader_a_majority_is_judged_as_service() -> None:
    grudge = {"n3": ["n1", "n2"], "n1": ["n3"], "n2": ["n3"]}
    h = Hist().fault("partition", 5.0, 10.0, leader="n1", targets=["n3"], grudge=grudge)
    steady(h, 0.0, 12.0)
    res = check_failover(ctx(h))
    row = res["faults"][0]
    assert (row["hits_leader"], row["class"], row["ok"]) == (False, "service", True)


def test_a_ring_partition_letting_a_cut_node_elect_is_judged_as_a_failover() -> None:
    # Five nodes, each cut from the two nodes two places along from it: every node keeps
    # a majority, and n3, cut from the leader n1, may win an election past it.
    nodes = ["n1", "n2", "n3", "n4", "n5"]
    grudge = {n: [m for m in nodes if abs(nodes.index(n) - nodes.index(m)) == 2] for n in nodes}
    h = Hist().fault("partition", 5.0, 10.0, leader="n1", targets=nodes, grudge=grudge)
    outage(steady(h, 0.0, 5.0), 5.0, 6.0)
    steady(h, 6.0, 12.0)
    row = check_failover(ctx(h, nodes=nodes))["faults"][0]
    assert row["class"] == "leader"
    assert "elect past the leader n1" in row["class_reason"]


def test_a_cutting_link_toxic_on_the_leader_is_a_failover() -> None:
    toxic = {"type": "timeout", "attributes": {"timeout": 0}}
    h = Hist().fault("link", 5.0, 10.0, leader="n1", targets=["n1"], toxic=toxic)
    outage(steady(h, 0.0, 5.0), 5.0, 6.0)
    steady(h, 6.0, 12.0)
    row = check_failover(ctx(h))["faults"][0]
    assert (row["class"], row["ok"]) == ("leader", True)


def test_a_fault_taking_out_a_majority_is_timed_from_its_end() -> None:
    h = Hist().fault("kill", 5.0, 10.0, leader="n1", targets=["n1", "n2"])
    outage(steady(h, 0.0, 5.0), 5.0, 10.5)
    steady(h, 10.5, 12.0)
    res = check_failover(ctx(h, failover_bound=2))
    row = res["faults"][0]
    assert row["measured_from"] == "end"
    assert res["valid"] is True and 0.5 <= row["write_recovery_s"] <= 0.55


def test_a_power_cut_of_the_whole_cluster_is_judged_from_its_end() -> None:
    # Power back on and every node restarted: the store must serve again within the bound.
    h = Hist().fault("power-cut", 5.0, 9.0, leader="n1", targets=["n1", "n2", "n3"])
    outage(steady(h, 0.0, 5.0), 5.0, 12.0)
    steady(h, 12.0, 14.0)
    res = check_failover(ctx(h, failover_bound=2))
    row = res["faults"][0]
    assert row["judged"] is True and row["measured_from"] == "end"
    assert res["valid"] is False and "power-cut at 5.0s" in res["why"]


def test_a_majority_pause_after_which_service_is_slow_to_return_is_invalid() -> None:
    h = Hist().fault("pause", 5.0, 9.0, leader="n1", targets=["n1", "n2"])
    outage(steady(h, 0.0, 5.0), 5.0, 12.0)  # back 3 s after the heal
    steady(h, 12.0, 14.0)
    res = check_failover(ctx(h, failover_bound=2))
    row = res["faults"][0]
    assert (row["class"], row["measured_from"]) == ("majority", "end")
    assert res["valid"] is False
    assert "the first write took 3.0" in res["why"]


def test_slow_links_and_clock_skew_must_not_stop_service() -> None:
    h = Hist().fault("link", 2.0, 5.0, leader="n1", targets=["n1"], toxic={"type": "latency"})
    h.fault("clock", 6.0, 9.0, leader="n1", targets=["n1"])
    outage(steady(h, 0.0, 2.0), 2.0, 10.0)
    res = check_failover(ctx(h))
    assert [r["class"] for r in res["faults"]] == ["service", "service"]
    assert [r["ok"] for r in res["faults"]] == [False, False]


def test_by_kind_gives_p50_and_max_per_fault_kind() -> None:
    h = Hist()
    for start, back in ((5.0, 0.5), (15.0, 1.5), (25.0, 1.0)):
        h.fault("pause", start, start + 3.0, leader="n1", targets=["n1"])
        outage(h, start, start + back)
        steady(h, start + back, start + 5.0)
    res = check_failover(ctx(h))
    pause = res["by_kind"]["pause"]
    assert pause["count"] == 3 and pause["judged"] == 3
    assert 1.0 <= pause["write_p50_s"] <= 1.05 and 1.5 <= pause["write_max_s"] <= 1.55


def test_a_read_nobody_tried_within_the_bound_is_not_judged() -> None:
    # The set workload reads once, long after the load: that is not a slow failover.
    h = Hist().fault("kill", 5.0, 8.0, leader="n1", targets=["n1"])
    t = 0.0
    while t < 12.0:
        if not 5.0 <= t < 5.5:
            h.op(0, "add", int(t * 10), t, t + 0.01, node="n5")
        t += 0.1
    h.op(9, "read", None, 20.0, 20.1, result=[], node="n5")
    res = check_failover(ctx(h, write_fs=["add"], read_fs=["read"], failover_bound=2))
    assert res["valid"] is True
    assert res["faults"][0]["read_recovery_s"] > 14


def test_load_ending_before_the_bound_after_a_fault_is_not_a_failure() -> None:
    h = Hist().fault("kill", 5.0, 9.0, leader="n1", targets=["n1"])
    outage(steady(h, 0.0, 5.0), 5.0, 6.0)  # the load stops a second into the fault
    res = check_failover(ctx(h, failover_bound=2))
    assert res["valid"] is True and res["faults"][0]["write_recovery_s"] is None


def test_nodes_given_as_a_count_or_unknown_time_a_one_node_kill_from_its_start() -> None:
    h = Hist().fault("kill", 5.0, 9.0, leader="n1", targets=["n1"])
    outage(steady(h, 0.0, 5.0), 5.0, 6.0)
    steady(h, 6.0, 10.0)
    for nodes in (3, []):
        res = check_failover(ctx(h, nodes=nodes))
        assert res["faults"][0]["measured_from"] == "start", nodes
