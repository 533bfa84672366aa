"""What the store's adapter vouches for from the collected nodes (committed.py):
the most advanced restore, complete only when nothing says a committed entry
could be missing from it."""

from __future__ import annotations

from typing import Any

from squall.systems.aurora.committed import committed_requests


def node(
    index: int, digest: str = "d", role: str = "follower", commit: int | None = None
) -> dict[str, Any]:
    return {
        "status": {"role": role, "commit_index": index if commit is None else commit},
        "digest": {"index": index, "digest": digest},
        "restore": {"index": index, "digest": digest, "requests": [["w0.1", index, True]]},
    }


def test_the_most_advanced_restore_answers_and_vouches_when_all_agree():
    got = committed_requests({"n1": node(7, role="leader"), "n2": node(5, "old")})
    assert got is not None and got["complete"] is True, got
    assert got["committed"] == {"w0.1": [7, True]} and "n1" in got["source"]


def test_a_restore_short_of_the_commit_index_vouches_for_nothing_missing():
    got = committed_requests({"n1": node(7, role="leader", commit=9)})
    assert got is not None and got["complete"] is False and "short of" in got["why"]
    assert got["committed"], "what it holds still counts as committed"


def test_no_leader_or_a_restore_unlike_the_live_state_is_incomplete():
    assert committed_requests({"n1": node(7)})["complete"] is False  # type: ignore[index]
    lossy = node(7, role="leader")
    lossy["restore"]["digest"] = "other"
    got = committed_requests({"n1": lossy})
    assert got is not None and got["complete"] is False and "not the state" in got["why"]


def test_a_run_collected_before_request_ids_has_no_resolution():
    old = node(7, role="leader")
    del old["restore"]["requests"]
    assert committed_requests({"n1": old}) is None
