"""Network partitions: a grudge computed as data, applied by the backend.

On the local backend (no network namespaces) the same grudge is applied by
blackholing the Toxiproxy proxies that peers talk through (``Link.cut``).

The topology is chosen by name (``nemesis.grudges.TOPOLOGIES``) or given as
an explicit grudge (``grudge: {n1: [n2, n3]}``, how a recorded run replays
the exact cut). ``cluster.partition`` applies it (iptables DROP on the
receiver, in the docker backend) and ``cluster.heal`` removes it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from squall.nemesis import grudges
from squall.nemesis.base import Fault, NemesisError


class Partition(Fault):
    kind = "partition"
    options = frozenset({"grudge"})

    def __init__(self, grudge: str = "halves") -> None:
        super().__init__()
        if grudge not in grudges.TOPOLOGIES:
            raise NemesisError(
                f"partition topology {grudge!r} is unknown; known: {', '.join(grudges.TOPOLOGIES)}"
            )
        self.default = grudge
        self.active = False
        # Set by registry.build on backends without network namespaces
        # (local): the cut is then made by blackholing peer proxies.
        self.link: Any = None

    @classmethod
    def validate_event(cls, params: Mapping[str, Any], nodes: Sequence[str]) -> None:
        super().validate_event(params, nodes)
        spec = params.get("grudge", "halves")
        if isinstance(spec, dict):
            named = set(spec) | {
                n for v in spec.values() for n in (v if isinstance(v, list) else [v])
            }
            unknown = sorted(str(n) for n in named - set(nodes))
            if unknown or not all(isinstance(v, list) for v in spec.values()):
                raise NemesisError(
                    f"grudge {spec!r} must map nodes to lists of nodes of this cluster "
                    f"({', '.join(nodes)}); {', '.join(unknown) or 'a value is no list'} is not"
                )
            return
        try:  # every topology can be drawn on this many nodes (bridge needs 5)
            grudges.topology(str(spec), nodes, random.Random(0), leader=nodes[0])
        except grudges.GrudgeError as exc:
            raise NemesisError(str(exc)) from None

    def grudge_for(self, spec: Any, leader: str | None) -> grudges.Grudge:
        if isinstance(spec, dict):
            g = grudges.from_json(spec)
            unknown = (set(g) | set().union(*g.values())) - set(self.live.nodes) if g else set()
            if unknown:
                raise NemesisError(
                    f"grudge names {sorted(unknown)}, not in this cluster "
                    f"({', '.join(self.live.nodes)})"
                )
            return g
        try:
            return grudges.topology(str(spec), self.live.nodes, self.rng, leader)
        except grudges.GrudgeError as exc:
            raise NemesisError(str(exc)) from None

    def start(self, params: dict[str, Any], leader: str | None) -> dict[str, Any]:
        grudge = self.grudge_for(params.get("grudge", self.default), leader)
        self.active = True
        value = {
            "targets": grudges.targets(grudge),
            "leader": leader,
            "grudge": grudges.to_json(grudge),
        }
        if self.link is not None:
            value["proxies"] = self.link.cut(grudge)
        else:
            self.live.partition(grudge)
        return value

    def pinned(self, params: Any, value: Any) -> dict[str, Any]:
        return {"grudge": value["grudge"]} if value.get("grudge") else dict(params)

    def stop(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.link is not None:
            self.link.mend()
        else:
            self.live.heal()
        self.active = False
        return {"targets": list(self.live.nodes)}

    def teardown(self) -> None:
        if self.cluster is not None and self.active:
            self.stop({})
