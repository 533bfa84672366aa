"""etcd's fidelity checker and its reading of a member's last words, on collected data."""

from __future__ import annotations

import pytest

from squall.checkers.base import CheckContext
from squall.systems.etcd.fidelity import check_hashes
from squall.systems.etcd.system import EtcdSystem, member_hex


def nodes(**hashes: tuple[int, int]) -> dict[str, dict]:
    return {
        n: {"hash": {"revision": rev, "hash": h}, "restarts": 0} for n, (rev, h) in hashes.items()
    }


def test_members_that_hash_equal_at_one_revision_are_valid():
    res = check_hashes(CheckContext(history=[], nodes=nodes(n1=(9, 7), n2=(9, 7), n3=(9, 7))))
    assert res["valid"] is True


def test_a_member_that_hashes_differently_is_invalid_and_named():
    ctx = CheckContext(history=[], nodes=nodes(n1=(9, 7), n2=(9, 7), n3=(9, 8)))
    assert "n3 hash 8" in check_hashes(ctx)["why"]


def test_a_restarted_member_that_differs_is_said_to_have_restarted():
    collected = nodes(n1=(9, 7), n2=(9, 8))
    collected["n2"]["restarts"] = 2
    assert (
        "restarted during the run: n2"
        in check_hashes(CheckContext(history=[], nodes=collected))["why"]
    )


def test_hashes_taken_at_different_revisions_are_unknown_not_compared():
    ctx = CheckContext(history=[], nodes=nodes(n1=(9, 7), n2=(10, 8)))
    assert check_hashes(ctx)["valid"] == "unknown"


def test_a_member_that_gave_no_hash_makes_the_check_unknown():
    collected = {**nodes(n1=(9, 7)), "n2": {"hash": {"error": "no answer"}}}
    assert check_hashes(CheckContext(history=[], nodes=collected))["valid"] == "unknown"


def test_nothing_collected_is_unknown():
    assert check_hashes(CheckContext(history=[]))["valid"] == "unknown"


def test_a_runtime_fault_on_start_is_a_refusal_of_the_data():
    log = '{"level":"info","msg":"starting"}\nunexpected fault address 0x7f\nfatal error: fault\n'
    assert EtcdSystem().refusal(log) == "fatal error: fault"


def test_a_clean_log_is_no_refusal():
    assert EtcdSystem().refusal('{"level":"info","msg":"ready to serve client requests"}') is None


def test_member_ids_print_as_etcd_prints_them_and_zero_means_no_leader():
    assert (member_hex("10276657743932975437"), member_hex("0")) == ("8e9e05c52164694d", None)


def test_options_reject_an_election_timeout_under_five_heartbeats():
    with pytest.raises(ValueError, match="election_ms"):
        EtcdSystem().validate_options({"heartbeat_ms": 100, "election_ms": 300})
