"""Partition topologies as data: grudges.

A grudge maps each node to the set of nodes whose packets it drops (the
contract of ``Cluster.partition``). Every function here is pure: it takes the
node names and a seeded ``random.Random`` (where a choice is made) and
returns a new grudge, so a topology can be computed, recorded in the history,
replayed and unit-tested without a cluster.

The shapes are Jepsen's. Most are easiest to state as "who can still hear
whom", so they are built as a networkx graph of the links that stay up and
turned into a grudge by taking the complement: a node drops everything it is
not connected to. That keeps each topology a one-line description of the
surviving network rather than a hand-written list of cuts.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence

import networkx as nx

Grudge = dict[str, set[str]]

TOPOLOGIES = ("halves", "one", "leader", "majorities-ring", "bridge")


class GrudgeError(ValueError):
    """A topology that cannot be built from these nodes; the message says why."""


def _need(nodes: Sequence[str], at_least: int, shape: str) -> list[str]:
    ns = list(dict.fromkeys(nodes))
    if len(ns) != len(nodes):
        raise GrudgeError(f"node names must be unique, got {list(nodes)}")
    if len(ns) < at_least:
        raise GrudgeError(f"the {shape!r} partition needs at least {at_least} nodes, got {len(ns)}")
    return ns


def from_graph(graph: nx.Graph, nodes: Iterable[str]) -> Grudge:
    """The grudge in which each node hears exactly its neighbours in ``graph`` (and itself)."""
    ns = list(nodes)
    out: Grudge = {}
    for n in ns:
        hears = set(graph.neighbors(n)) if n in graph else set()
        cut = {m for m in ns if m != n and m not in hears}
        if cut:
            out[n] = cut
    return out


def complete(components: Iterable[Iterable[str]]) -> Grudge:
    """Every component hears only itself: a clean split into islands."""
    graph = nx.Graph()
    nodes: list[str] = []
    for comp in components:
        members = list(comp)
        nodes.extend(members)
        graph.add_nodes_from(members)
        graph.add_edges_from(nx.complete_graph(members).edges)
    return from_graph(graph, nodes)


def halves(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """Splits the nodes at random into a minority and a majority that cannot talk."""
    ns = _need(nodes, 2, "halves")
    rng.shuffle(ns)
    cut = len(ns) // 2
    return complete([ns[:cut], ns[cut:]])


def isolate(nodes: Sequence[str], node: str) -> Grudge:
    """Cuts ``node`` off from every other node; the rest stay fully connected."""
    ns = _need(nodes, 2, "isolate")
    if node not in ns:
        raise GrudgeError(f"cannot isolate {node!r}: it is not one of {', '.join(ns)}")
    return complete([[node], [n for n in ns if n != node]])


def one(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """Isolates one node chosen at random."""
    ns = _need(nodes, 2, "one")
    return isolate(ns, rng.choice(sorted(ns)))


def bridge(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """Two halves that cannot hear each other, joined by one node that hears both.

    Neither half alone is a majority once the bridge is taken away, so a
    leader on one side can keep a majority only through the bridge node.
    """
    ns = _need(nodes, 3, "bridge")
    rng.shuffle(ns)
    cut = len(ns) // 2
    left, right = ns[:cut], ns[cut:]
    the_bridge = right[0]
    graph = nx.Graph()
    graph.add_nodes_from(ns)
    graph.add_edges_from(nx.complete_graph(left).edges)
    graph.add_edges_from(nx.complete_graph(right).edges)
    graph.add_edges_from((the_bridge, n) for n in left)
    return from_graph(graph, ns)


def majorities_ring(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """Every node hears a majority, and no two nodes hear the same majority.

    The nodes are placed on a ring in random order; each hears the window of
    ``majority`` consecutive nodes around it and drops the rest. Windows are
    directed (with an even count, a node may hear a peer that drops it), which
    is the point: there is no majority that agrees with itself.
    """
    ns = _need(nodes, 3, "majorities-ring")
    rng.shuffle(ns)
    n = len(ns)
    m = n // 2 + 1
    hears = nx.DiGraph()
    hears.add_nodes_from(ns)
    for k, node in enumerate(ns):
        start = k - m // 2
        window = [ns[(start + i) % n] for i in range(m)]
        hears.add_edges_from((node, w) for w in window if w != node)
    return {node: {x for x in ns if x != node and not hears.has_edge(node, x)} for node in ns}


def topology(
    name: str, nodes: Sequence[str], rng: random.Random, leader: str | None = None
) -> Grudge:
    """Builds the named topology; ``leader`` is needed only by ``"leader"``."""
    if name == "halves":
        return halves(nodes, rng)
    if name == "one":
        return one(nodes, rng)
    if name == "leader":
        if leader is None:
            raise GrudgeError(
                "the 'leader' partition needs a leader, and none is known "
                "(is the cluster up and has it elected one?)"
            )
        return isolate(nodes, leader)
    if name == "majorities-ring":
        return majorities_ring(nodes, rng)
    if name == "bridge":
        return bridge(nodes, rng)
    raise GrudgeError(f"partition topology {name!r} is unknown; known: {', '.join(TOPOLOGIES)}")


def components(grudge: Mapping[str, Iterable[str]], nodes: Iterable[str]) -> list[set[str]]:
    """The groups of nodes that can still reach each other both ways."""
    ns = list(nodes)
    graph = nx.Graph()
    graph.add_nodes_from(ns)
    for a in ns:
        for b in ns:
            if a < b and b not in grudge.get(a, ()) and a not in grudge.get(b, ()):
                graph.add_edge(a, b)
    return [set(c) for c in nx.connected_components(graph)]


def to_json(grudge: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """The history form of a grudge: sorted lists, so it is JSON and stable."""
    return {n: sorted(cut) for n, cut in sorted(grudge.items()) if cut}


def from_json(value: Mapping[str, Iterable[str]]) -> Grudge:
    return {str(n): {str(x) for x in cut} for n, cut in value.items()}


def targets(grudge: Mapping[str, Iterable[str]]) -> list[str]:
    """The nodes that drop something: the ones the fault touches."""
    return sorted(n for n, cut in grudge.items() if cut)
