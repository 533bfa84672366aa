"""Jepsen's stats: per-f outcome counts; some f never succeeding is invalid."""

from __future__ import annotations

from synth_run import Hist, ctx

from squall.checkers.stats import check_stats
from squall.util import quantile


def test_counts_every_outcome_per_f() -> None:
    h = Hist().op(1, "write", ["k", 1], 0, 1).op(2, "write", ["k", 2], 0, 1, "fail")
    h.op(3, "read", ["k", None], 0, 1, "info").op(4, "read", ["k", None], 2, 3)
    h.fault("kill", 0.5, 0.7)  # nemesis ops are not counted
    res = check_stats(ctx(h))
    assert res["valid"] is True
    assert res["by_f"]["write"] == {"count": 2, "ok": 1, "fail": 1, "info": 0}
    assert res["by_f"]["read"] == {"count": 2, "ok": 1, "fail": 0, "info": 1}
    assert res["count"] == 4


def test_an_f_that_never_succeeded_is_invalid() -> None:
    h = Hist().op(1, "read", ["k", None], 0, 1).op(2, "cas", ["k", [1, 2]], 0, 1, "fail")
    res = check_stats(ctx(h))
    assert res["valid"] is False
    assert res["never_ok"] == ["cas"] and "none of 1 cas operations succeeded" in res["why"]


def test_no_client_ops_is_unknown() -> None:
    assert check_stats(ctx(Hist().fault("kill", 0, 1)))["valid"] == "unknown"


def test_quantile_is_nearest_rank_of_seen_values() -> None:
    assert quantile([5, 1, 3], 0.5) == 3
    assert quantile(list(range(1, 101)), 0.99) == 99
    assert quantile([], 0.5) is None


def test_the_commonest_error_of_an_f_that_never_succeeded_is_named() -> None:
    h = Hist().op(1, "read", ["k", None], 0, 1)
    for i in range(3):
        h.op(10 + i, "add", i, i, i + 0.5, "fail")
    ops = [o.with_(error="not_found") if o.type == "fail" else o for o in h.build()]
    res = check_stats(ctx(ops))
    assert res["errors"] == {"add": {"not_found": 3}}
    assert res["why"] == "none of 3 add operations succeeded (most common error: not_found ×3)"
