"""Leader election: one leader per term, and a new one after the leader dies."""

from __future__ import annotations

import re
import time
from collections import defaultdict

import pytest

from squall.cluster.local import LocalCluster
from tests.aurora import status
from tests.store.conftest import MakeCluster
from tests.store.helpers import Client, wait_for

ELECTED = re.compile(r"term (\d+): elected leader")


def leaders_by_term(cluster: LocalCluster) -> dict[int, set[str]]:
    """Every election win any node logged, by term: the complete record, not a sample."""
    out: dict[int, set[str]] = defaultdict(set)
    for n in cluster.nodes:
        for m in ELECTED.finditer(cluster.log_path(n).read_text()):
            out[int(m.group(1))].add(n)
    return out


@pytest.mark.parametrize("nodes", [3, 5])
def test_each_term_has_at_most_one_leader_across_leader_kills(
    make_cluster: MakeCluster, nodes: int
) -> None:
    cluster = make_cluster(nodes)
    client = Client(cluster)
    for round_ in range(3):
        old = client.leader()
        client.put("k", round_)
        cluster.kill(old)
        wait_for("a new leader", lambda old=old: (cluster.leader(0.1) or old) != old)
        cluster.start(old)
    by_term = leaders_by_term(cluster)
    assert len(by_term) >= 4, f"expected an election per kill, saw {dict(by_term)}"
    assert all(len(winners) == 1 for winners in by_term.values()), dict(by_term)


def test_a_lone_minority_elects_no_leader(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3)
    leader = Client(cluster).leader()
    for n in cluster.nodes:
        if n != leader:
            cluster.kill(n)
    # check-quorum: the leader steps down once it cannot hear a majority
    wait_for(
        "the isolated leader stepping down",
        lambda: (status(cluster, leader) or {}).get("role") not in (None, "leader"),
        timeout=5,
    )


def test_a_follower_back_from_a_pause_does_not_depose_the_leader(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3)
    client = Client(cluster)
    leader = client.leader()
    term = (status(cluster, leader) or {})["term"]
    follower = next(n for n in cluster.nodes if n != leader)
    cluster.pause(follower)
    client.put("k", 1)  # the leader carries on with the other follower
    time.sleep(0.7)  # the fault's duration: past the follower's longest election timeout (600 ms)
    cluster.resume(follower)
    wait_for(
        "the resumed follower to follow the leader again",
        lambda: (status(cluster, follower) or {}).get("leader") == leader,
    )
    # pre-vote: its timer fired while paused, yet no term was raised and no election held
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        s = status(cluster, leader) or {}
        assert (s.get("role"), s.get("term")) == ("leader", term), f"the leader was deposed: {s}"
        time.sleep(0.05)
