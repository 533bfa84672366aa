"""Restore fidelity on hand-written node digests."""

from __future__ import annotations

from typing import Any

from synth_run import node_digests

from squall.checkers.base import CheckContext
from squall.systems.aurora.fidelity import check_fidelity


def check(nodes: dict[str, Any]) -> dict[str, Any]:
    return check_fidelity(CheckContext(history=[], nodes=nodes))


def node(
    final: tuple[int, str],
    history: list[tuple[str, int, str]] | None = None,
    restore: tuple[int, str] | None = None,
    restarts: int = 0,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "digest": {"index": final[0], "digest": final[1]},
        "digest_history": [
            {"event": e, "index": i, "digest": d, "time": 0} for e, i, d in history or []
        ],
        "restarts": restarts,
    }
    if restore:
        out["restore"] = {"index": restore[0], "digest": restore[1]}
    return out


def test_replicas_agreeing_everywhere_are_valid() -> None:
    res = check(node_digests(mismatch=False))
    assert res["valid"] is True
    assert res["mismatch_count"] == 0 and res["indexes_compared"] == 10
    assert res["converged"] is True and res["restarted"] == ["n1"]


def test_final_digests_differing_at_the_same_index_name_node_index_and_digests() -> None:
    res = check({"n1": node((50, "aaaa")), "n2": node((50, "aaaa")), "n3": node((50, "bbbb"))})
    assert res["valid"] is False
    m = res["mismatches"][0]
    assert m["index"] == 50
    assert (m["a"]["node"], m["a"]["digest"]) == ("n1", "aaaa")
    assert (m["b"]["node"], m["b"]["digest"]) == ("n3", "bbbb")
    assert "index 50" in res["why"] and "aaaa" in res["why"] and "bbbb" in res["why"]


def test_a_restart_restoring_to_a_different_digest_is_invalid() -> None:
    res = check(node_digests(mismatch=True))
    assert res["valid"] is False
    m = res["mismatches"][0]
    assert m["index"] == 700 and m["b"] == {"node": "n1", "event": "restore", "digest": "bad0" * 16}


def test_a_round_trip_differing_from_a_replica_at_its_index_is_invalid() -> None:
    res = check({"n1": node((80, "good"), restore=(80, "evil")), "n2": node((80, "good"))})
    assert res["valid"] is False
    assert res["mismatches"][0]["b"]["event"] == "round-trip"


def test_a_restore_at_an_index_nobody_else_recorded_is_unverified_not_passed() -> None:
    nodes = {
        "n1": node((100, "x"), history=[("restore", 37, "r37")], restarts=1),
        "n2": node((100, "x")),
    }
    res = check(nodes)
    assert res["valid"] is True
    assert res["unverified"] == [{"node": "n1", "event": "restore", "index": 37}]


def test_nodes_at_different_final_indexes_are_not_compared_but_reported() -> None:
    res = check({"n1": node((100, "x"), history=[("apply", 90, "y")]), "n2": node((90, "y"))})
    assert res["valid"] is True
    assert res["converged"] is False and res["final_indexes"] == {"n1": 100, "n2": 90}


def test_nothing_collected_is_unknown() -> None:
    assert check({})["valid"] == "unknown"


def test_a_round_trip_that_could_not_restore_is_unknown_and_names_the_node() -> None:
    nodes = {"n1": node((80, "good")), "n2": node((80, "good"))}
    nodes["n2"]["restore"] = {"error": "snapshot 70: checksum mismatch"}
    res = check(nodes)
    assert res["valid"] == "unknown"
    assert "n2" in res["why"] and "checksum mismatch" in res["why"]
