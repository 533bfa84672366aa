"""The set checker on hand-written histories."""

from __future__ import annotations

from synth_run import Hist, ctx

from squall.checkers.sets import check_set


def adds(h: Hist, outcomes: dict[int, str], t: float = 0.0) -> Hist:
    for i, (elem, outcome) in enumerate(sorted(outcomes.items())):
        h.op(100 + i, "add", elem, t + 0.01 * i, t + 0.01 * i + 0.005, outcome)
    return h


def final_read(
    h: Hist, elems: list[int], t: float = 10.0, process: int = 900, node: str = "n1"
) -> Hist:
    return h.op(process, "read", None, t, t + 0.1, "ok", result=elems, node=node)


def test_every_acknowledged_add_present_is_valid() -> None:
    h = final_read(adds(Hist(), {1: "ok", 2: "ok", 3: "ok"}), [3, 1, 2])
    res = check_set(ctx(h))
    assert res["valid"] is True
    assert res["lost"]["count"] == 0 and res["acknowledged_count"] == 3


def test_a_lost_acknowledged_add_is_invalid_and_named() -> None:
    h = final_read(adds(Hist(), {1: "ok", 2: "ok", 3: "ok"}), [1, 3])
    res = check_set(ctx(h))
    assert res["valid"] is False
    assert res["lost"] == {"count": 1, "first": [2]}
    assert res["why"] == "1 acknowledged adds lost (e.g. 2)"


def test_an_element_never_attempted_is_unexpected() -> None:
    h = final_read(adds(Hist(), {1: "ok"}), [1, 42])
    res = check_set(ctx(h))
    assert res["valid"] is False
    assert res["unexpected"]["first"] == [42]


def test_an_element_read_twice_is_duplicated() -> None:
    h = final_read(adds(Hist(), {1: "ok", 2: "ok"}), [1, 2, 2])
    res = check_set(ctx(h))
    assert res["valid"] is False
    assert res["duplicated"] == {"count": 1, "first": [2]}


def test_an_indeterminate_add_that_is_present_is_recovered_and_allowed() -> None:
    h = adds(Hist(), {1: "ok", 2: "info", 3: "info"})
    h.op(300, "add", 4, 0.5, None)  # never completed: indeterminate too
    res = check_set(ctx(final_read(h, [1, 2, 4])))
    assert res["valid"] is True
    assert res["recovered"] == {"count": 2, "first": [2, 4]}


def test_a_failed_add_that_is_present_is_invalid() -> None:
    h = final_read(adds(Hist(), {1: "ok", 2: "fail"}), [1, 2])
    res = check_set(ctx(h))
    assert res["valid"] is False
    assert res["failed_present"]["first"] == [2]


def test_without_a_successful_final_read_the_verdict_is_unknown() -> None:
    h = adds(Hist(), {1: "ok"})
    h.op(900, "read", None, 10.0, 10.5, "info")
    res = check_set(ctx(h))
    assert res["valid"] == "unknown"
    assert "no final read succeeded" in res["why"]


def test_the_read_that_completed_last_is_authoritative() -> None:
    h = adds(Hist(), {1: "ok", 2: "ok"})
    final_read(h, [1, 2], t=10.0, process=901, node="n2")
    final_read(h, [1, 2, 2], t=11.0, process=902, node="n3")  # completes last
    res = check_set(ctx(h))
    assert res["final_read"]["node"] == "n3"
    assert res["duplicated"]["count"] == 1


def test_an_earlier_read_missing_an_acknowledged_add_is_a_stale_read() -> None:
    h = adds(Hist(), {1: "ok", 2: "ok"})
    final_read(h, [1], t=10.0, process=901, node="n2")
    final_read(h, [1, 2], t=11.0, process=902, node="n3")
    res = check_set(ctx(h))
    assert res["valid"] is False
    assert res["stale_reads"][0]["node"] == "n2"
    assert res["stale_reads"][0]["missing"]["first"] == [2]


def test_an_add_acknowledged_after_the_read_began_is_not_lost() -> None:
    h = adds(Hist(), {1: "ok"})
    h.op(500, "add", 2, 9.0, 10.05, "ok")  # acked while the read was running
    res = check_set(ctx(final_read(h, [1], t=10.0)))
    assert res["valid"] is True
