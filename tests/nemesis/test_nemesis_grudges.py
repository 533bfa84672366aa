"""Properties of the partition topologies (pure functions, no cluster)."""

from __future__ import annotations

import random

import pytest

from squall.nemesis import grudges
from squall.nemesis.grudges import GrudgeError

NODES5 = ["n1", "n2", "n3", "n4", "n5"]


def hears(grudge: grudges.Grudge, node: str, nodes: list[str]) -> set[str]:
    return {n for n in nodes if n not in grudge.get(node, set())}


@pytest.mark.parametrize("n", [2, 3, 4, 5, 7])
def test_halves_splits_into_a_minority_and_a_majority_that_cannot_talk(n: int) -> None:
    nodes = [f"n{i}" for i in range(1, n + 1)]
    g = grudges.halves(nodes, random.Random(1))
    comps = sorted(grudges.components(g, nodes), key=len)
    assert len(comps) == 2
    assert len(comps[0]) == n // 2 and len(comps[1]) == n - n // 2
    for a in comps[0]:
        assert g[a] == comps[1]


def test_one_isolates_exactly_one_node_from_all_others() -> None:
    g = grudges.one(NODES5, random.Random(3))
    comps = sorted(grudges.components(g, NODES5), key=len)
    assert [len(c) for c in comps] == [1, 4]
    (lonely,) = comps[0]
    assert g[lonely] == set(NODES5) - {lonely}
    assert all(g[n] == {lonely} for n in comps[1])


def test_leader_topology_isolates_the_named_leader() -> None:
    g = grudges.topology("leader", NODES5, random.Random(0), leader="n4")
    assert g["n4"] == {"n1", "n2", "n3", "n5"}
    assert grudges.targets(g) == NODES5


def test_leader_topology_without_a_leader_says_so() -> None:
    with pytest.raises(GrudgeError, match="needs a leader"):
        grudges.topology("leader", NODES5, random.Random(0), leader=None)


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7])
def test_majorities_ring_every_node_hears_a_distinct_majority_including_itself(n: int) -> None:
    nodes = [f"n{i}" for i in range(1, n + 1)]
    g = grudges.majorities_ring(nodes, random.Random(n))
    views = [frozenset(hears(g, node, nodes)) for node in nodes]
    for node, view in zip(nodes, views, strict=True):
        assert node in view
        assert len(view) == n // 2 + 1, f"{node} hears {sorted(view)}: not exactly a majority"
    assert len(set(views)) == n, "two nodes hear the same majority"


def test_bridge_keeps_one_node_connected_to_both_halves_that_cannot_talk() -> None:
    g = grudges.bridge(NODES5, random.Random(7))
    full = [n for n in NODES5 if not g.get(n)]
    assert len(full) == 1, f"expected one bridge node hearing everyone, got {full}"
    (b,) = full
    rest = [n for n in NODES5 if n != b]
    sides = grudges.components({n: g.get(n, set()) for n in rest}, rest)
    assert sorted(len(s) for s in sides) == [2, 2]
    assert all(b not in g.get(n, set()) for n in rest)


def test_same_seed_gives_the_same_grudge_and_different_seeds_vary() -> None:
    a = grudges.halves(NODES5, random.Random(42))
    b = grudges.halves(NODES5, random.Random(42))
    assert a == b
    seen = {str(grudges.to_json(grudges.halves(NODES5, random.Random(s)))) for s in range(20)}
    assert len(seen) > 1


def test_to_json_round_trips_and_sorts() -> None:
    g = {"n2": {"n3", "n1"}, "n1": {"n2"}, "n3": set()}
    j = grudges.to_json(g)
    assert j == {"n1": ["n2"], "n2": ["n1", "n3"]}
    assert grudges.from_json(j) == {"n1": {"n2"}, "n2": {"n1", "n3"}}


def test_unknown_topology_names_the_known_ones() -> None:
    with pytest.raises(GrudgeError, match="known: halves, one, leader, majorities-ring, bridge"):
        grudges.topology("halfs", NODES5, random.Random(0))


def test_too_few_nodes_is_refused_with_the_minimum() -> None:
    with pytest.raises(GrudgeError, match="at least 3"):
        grudges.majorities_ring(["n1", "n2"], random.Random(0))
