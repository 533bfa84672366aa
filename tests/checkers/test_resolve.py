"""Info ops resolved from the system's log (squall/checkers/resolve.py): a
write the log never committed is dropped, one it committed is bounded by the
first acknowledged op after it in the log, and nothing changes without a
resolution, or when the log is not vouched complete."""

from __future__ import annotations

from typing import Any

from squall.checkers.linearizable import check
from squall.history import Op


def history(*events: tuple[Any, ...]) -> list[Op]:
    """(process, type, f, value[, request_id]) in order; times are positions."""
    out = []
    for i, (p, t, f, v, *rid) in enumerate(events):
        extra = {"request_id": rid[0]} if rid else {}
        out.append(Op(process=p, type=t, f=f, value=v, index=i, time=i, extra=extra))
    return out


def resolution(committed: dict[str, list[Any]], complete: bool = True) -> dict[str, Any]:
    return {"source": "test", "complete": complete, "why": None, "committed": committed}


# p0's write of 1 timed out; p1 then read 1. Possible only if the write happened.
READ_OF_AN_INFO_WRITE = history(
    (0, "invoke", "write", 1),
    (0, "info", "write", 1, "w0.1"),
    (1, "invoke", "read", None),
    (1, "ok", "read", 1),
)


def test_without_a_resolution_an_info_write_may_have_happened():
    assert check("cas-register", READ_OF_AN_INFO_WRITE)["valid"] is True


def test_a_write_the_complete_log_never_committed_cannot_be_read():
    res = check("cas-register", READ_OF_AN_INFO_WRITE, resolution=resolution({}))
    assert res["valid"] is False, res
    assert res["resolution"]["never_committed"] == 1


def test_an_incomplete_log_drops_nothing():
    res = check("cas-register", READ_OF_AN_INFO_WRITE, resolution=resolution({}, complete=False))
    assert res["valid"] is True and res["resolution"]["never_committed"] == 0


def test_a_committed_write_is_bounded_by_the_next_acknowledged_entry():
    # p0 writes 1 (info, logged at 5); p1 writes 2 (logged at 6), then 3 (at 7),
    # both acknowledged; then p2 reads 1. Unbounded, the write of 1 may land
    # after the write of 3. The log commits it before the write of 2, so it
    # took effect before that write returned, before the write of 3 began:
    # the read had to see 3.
    h = history(
        (0, "invoke", "write", 1),
        (1, "invoke", "write", 2),
        (1, "ok", "write", 2, "w1.1"),
        (1, "invoke", "write", 3),
        (1, "ok", "write", 3, "w1.2"),
        (2, "invoke", "read", None),
        (2, "ok", "read", 1),
        (0, "info", "write", 1, "w0.1"),
    )
    assert check("cas-register", h)["valid"] is True
    log = {"w0.1": [5, True], "w1.1": [6, True], "w1.2": [7, True]}
    res = check("cas-register", h, resolution=resolution(log))
    assert res["valid"] is False and res["resolution"]["bounded"] == 1, res
    # Logged after both, the same history is fine: nothing acknowledged follows it.
    res = check("cas-register", h, resolution=resolution({**log, "w0.1": [8, True]}))
    assert res["valid"] is True and res["resolution"]["committed_unbounded"] == 1, res
    # A snapshot took its index: committed, but the log cannot place it.
    res = check("cas-register", h, resolution=resolution({**log, "w0.1": [None, True]}))
    assert res["valid"] is True and res["resolution"]["committed_unbounded"] == 1, res


def test_a_logged_cas_whose_precondition_failed_changed_nothing():
    # cas(0 -> 3) timed out and a read saw 3: fine if the cas took effect. The
    # log holds it as refused (the register was not 0 when it applied): then
    # nothing ever wrote 3.
    h = history(
        (0, "invoke", "write", 0),
        (0, "ok", "write", 0, "w0.1"),
        (1, "invoke", "cas", [0, 3]),
        (2, "invoke", "read", None),
        (2, "ok", "read", 3),
        (0, "invoke", "write", 7),
        (0, "ok", "write", 7, "w0.2"),
        (1, "info", "cas", [0, 3], "w1.1"),
    )
    assert check("cas-register", h)["valid"] is True
    log = {"w0.1": [1, True], "w1.1": [2, False], "w0.2": [3, True]}
    res = check("cas-register", h, resolution=resolution(log))
    assert res["valid"] is False and res["resolution"]["bounded"] == 1, res
    took = check("cas-register", h, resolution=resolution({**log, "w1.1": [2, True]}))
    assert took["valid"] is True, took


def test_an_acknowledged_write_missing_from_the_log_is_counted():
    h = history((0, "invoke", "write", 1), (0, "ok", "write", 1, "w0.1"))
    res = check("cas-register", h, resolution=resolution({}))
    assert res["valid"] is True and res["resolution"]["acknowledged_not_in_log"] == 1
