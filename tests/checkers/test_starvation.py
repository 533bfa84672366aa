"""Write starvation under a read storm, on hand-written scheduler histories."""

from __future__ import annotations

from synth_run import Hist, ctx

from squall.checkers.starvation import check_starvation


def storm(h: Hist, t0: float, t1: float, readers: int = 8) -> Hist:
    """``readers`` clients issuing 50 ms getJobUpdateDetails reads back to back."""
    for r in range(readers):
        t = t0 + 0.003 * r
        while t < t1:
            h.op(1000 + r, "details", {"job": "j"}, t, t + 0.05, result={"instances": 4000})
            t += 0.05
    return h


def transitions(h: Hist, t0: float, t1: float, latency: float = 0.02, process: int = 1) -> Hist:
    t = t0
    while t < t1:
        h.op(
            process,
            "transition",
            {"task": "t1", "from": "PENDING", "to": "RUNNING"},
            t,
            t + latency,
        )
        t += 0.25
    return h


def test_quick_writes_during_a_read_storm_are_valid_with_percentiles() -> None:
    h = transitions(storm(Hist(), 0.0, 5.0), 0.0, 5.0)
    res = check_starvation(ctx(h, starvation_bound=1))
    assert res["valid"] is True
    assert res["writes_without_faults"]["count"] == 20
    assert res["writes_without_faults"]["p50"] == 0.02 and res["writes"]["max"] == 0.02
    assert res["reads"]["count"] > 500


def test_a_write_starved_for_three_seconds_with_no_fault_is_invalid() -> None:
    h = transitions(storm(Hist(), 0.0, 6.0), 0.0, 2.0)
    h.op(2, "transition", {"task": "t9", "from": "RUNNING", "to": "FINISHED"}, 2.0, 5.0)
    res = check_starvation(ctx(h, starvation_bound=1))
    assert res["valid"] is False
    worst = res["starved"][0]
    assert worst["waited_s"] == 3.0 and worst["reads_in_flight"] >= 8
    assert "waited 3.00s" in res["why"]


def test_a_long_write_during_a_fault_is_reported_but_not_judged() -> None:
    h = storm(Hist(), 0.0, 6.0).fault("kill", 1.0, 2.0)
    transitions(h, 0.0, 1.0)
    h.op(2, "transition", {"task": "t9"}, 1.5, 4.5)
    res = check_starvation(ctx(h, starvation_bound=1))
    assert res["valid"] is True
    assert res["writes_during_faults"]["max"] == 3.0


def test_a_write_in_the_failover_grace_after_a_fault_is_not_judged() -> None:
    h = Hist().fault("pause", 1.0, 2.0)
    transitions(h, 0.0, 1.0)
    h.op(2, "transition", {"task": "t9"}, 3.5, 5.0)  # within 2 s of the heal
    assert check_starvation(ctx(h, starvation_bound=1, failover_bound=2))["valid"] is True
    assert check_starvation(ctx(h, starvation_bound=1, failover_bound=1))["valid"] is False


def test_a_write_that_never_completed_waited_until_the_end() -> None:
    h = transitions(Hist(), 0.0, 10.0)
    h.op(2, "transition", {"task": "t9"}, 4.0, None)
    res = check_starvation(ctx(h, starvation_bound=1))
    assert res["valid"] is False
    assert res["starved"][0]["outcome"] == "info"


def test_no_writes_is_unknown() -> None:
    res = check_starvation(ctx(storm(Hist(), 0.0, 1.0)))
    assert res["valid"] == "unknown" and "no writes" in res["why"]


def test_write_fs_from_the_test_config_decide_what_is_a_write() -> None:
    h = Hist().op(1, "enqueue", 5, 0.0, 4.0)
    assert check_starvation(ctx(h))["valid"] == "unknown"
    assert check_starvation(ctx(h, write_fs=["enqueue"]))["valid"] is False


def status(role: str, term: int, applied: int, commit: int | None = None, **more: object) -> dict:
    return {
        "role": role,
        "term": term,
        "applied_index": applied,
        "commit_index": applied if commit is None else commit,
        **more,
    }


def test_a_starved_span_says_when_with_how_many_reads_and_what_the_leader_was_doing() -> None:
    from dataclasses import replace

    h = transitions(storm(Hist(), 0.0, 6.0), 0.0, 2.0)
    h.op(2, "transition", {"task": "t9"}, 2.0, 4.0)
    h.op(3, "transition", {"task": "t8"}, 3.0, 4.5)
    samples = [
        {"time": int(t * 1e9), "node": node, "status": st}
        for t, node, st in [
            (2.5, "n1", status("leader", 4, 100, 180, snapshot_in_progress=True)),
            (2.5, "n2", status("follower", 4, 90)),
            (2.5, "n3", None),
            (4.0, "n1", status("leader", 4, 140, 190, sending_snapshot=["n3"])),
        ]
    ]
    c = replace(ctx(h, starvation_bound=1), samples=samples)
    res = check_starvation(c)
    assert res["valid"] is False
    (span,) = res["spans"]
    assert (span["start_s"], span["end_s"], span["writes"]) == (2.0, 4.5, 2)
    assert span["reads_in_flight_max"] >= 8
    assert span["doing"] == (
        "leader n1 (term 4); applying 100 to 140 (26.7/s), up to 80 entries "
        "behind its commit index; snapshotting on n1; sending a snapshot "
        "(n1->n3); n3 not answering"
    )
    assert "2 starved in 2.0-4.5s" in res["why"]
    assert span["doing"] in res["why"]


def test_starved_writes_that_do_not_overlap_are_separate_spans() -> None:
    h = transitions(storm(Hist(), 0.0, 9.0), 0.0, 1.0)
    h.op(2, "transition", {"task": "t9"}, 1.0, 2.5)
    h.op(3, "transition", {"task": "t8"}, 5.0, 7.0)
    res = check_starvation(ctx(h, starvation_bound=1))
    assert [(s["start_s"], s["end_s"]) for s in res["spans"]] == [(1.0, 2.5), (5.0, 7.0)]
    assert res["spans"][0]["doing"] == "no status samples recorded"


def test_an_election_inside_a_span_is_named_with_its_terms() -> None:
    from squall.checkers.activity import describe

    samples = [
        {"time": 1, "node": "n1", "status": status("leader", 3, 10)},
        {"time": 2, "node": "n2", "status": status("candidate", 4, 10)},
        {"time": 3, "node": "n2", "status": status("leader", 4, 12)},
    ]
    said = describe(samples, 0, 10)["said"]
    assert said.startswith(
        "leaders n1 (term 3), n2 (term 4); an election (terms 3 to 4); n2 campaigning"
    )
