"""What every fault is: a value with setup, invoke and teardown.

A fault (Jepsen's nemesis) is created before the cluster starts, so it can
ask for what it needs in the nodes (``configure``: a FUSE device, an argv
wrapper, proxies between peers) through a typed request
(``squall.protocols.NodeNeeds``) the backend honours. ``setup`` hands it the
running cluster and its own seeded RNG; ``invoke`` takes a nemesis invoke op
(``start-<kind>`` or ``stop-<kind>``) and returns its completion; ``teardown``
undoes whatever is still in effect and must be safe to call twice.

The completion's value is the contract checkers read: a dict with at least
``targets`` (node ids the fault touched) and ``leader`` (the leader when the
fault started, or None), plus the fault's own keys. A completion is ``ok``
when the fault took effect and ``info`` (with ``error``) when it may have
taken effect only in part: the report still shades the window.
"""

from __future__ import annotations

import abc
import random
from collections.abc import Mapping, Sequence
from math import isfinite
from typing import Any

from squall.cluster.base import Cluster, ClusterError
from squall.faults import TARGETS
from squall.history import INFO, NEMESIS, OK, Op


class NemesisError(ValueError):
    """A fault was asked for something it cannot do; the message names the fix."""


class Fault(abc.ABC):
    """One kind of fault. Subclasses set ``kind`` and implement start/stop."""

    kind: str = ""
    # Option names a schedule event may pass to start (anything else is a typo).
    options: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.cluster: Cluster | None = None
        self.rng = random.Random(0)
        self.started_leader: str | None = None
        self.seed = 0  # the schedule's seed, for choices made before setup (configure)

    # -- lifecycle -------------------------------------------------------
    def configure(self, cluster: Cluster) -> None:  # noqa: B027 - optional hook
        """Asks for what the fault needs in the nodes (``cluster.spec.need``); runs before ``up``."""

    def setup(self, cluster: Cluster, rng: random.Random) -> None:
        self.cluster = cluster
        self.rng = rng

    def invoke(self, op: Op) -> Op:
        """Runs a start or stop op and returns its completion (ok, or info with error)."""
        params = dict(op.value or {}) if isinstance(op.value, Mapping) else {}
        # "leader" in every completion is the leader when the fault *started*.
        starting = op.f == f"start-{self.kind}"
        leader = self._leader() if starting else self.started_leader
        try:
            if starting:
                self.started_leader = leader
                self.check_options(params)
                value = self.start(params, leader)
            elif op.f == f"stop-{self.kind}":
                value = self.stop(params)
            else:
                raise NemesisError(
                    f"the {self.kind} nemesis cannot run {op.f!r}; it runs "
                    f"start-{self.kind} and stop-{self.kind}"
                )
        except (ClusterError, NemesisError, OSError) as exc:
            value = {"targets": params.get("nodes", []), "leader": leader}
            return completion(op, INFO, value, error=f"{type(exc).__name__}: {exc}")
        value.setdefault("leader", leader)
        return completion(op, OK, value)

    @abc.abstractmethod
    def start(self, params: dict[str, Any], leader: str | None) -> dict[str, Any]:
        """Injects the fault; returns the completion value (with ``targets``)."""

    @abc.abstractmethod
    def stop(self, params: dict[str, Any]) -> dict[str, Any]:
        """Heals what the last start did; returns the completion value."""

    def teardown(self) -> None:  # noqa: B027 - optional hook
        """Heals anything still in effect. Safe when nothing is."""

    def pinned(self, params: Mapping[str, Any], value: Mapping[str, Any]) -> dict[str, Any]:
        """The start options with this run's random choices fixed, for replay."""
        out = {k: v for k, v in params.items() if k not in ("target", "seconds")}
        if "nodes" in self.options and value.get("targets"):
            out["nodes"] = list(value["targets"])
        elif "target" in params:
            out["target"] = params["target"]
        return out

    # -- before the run ------------------------------------------------------
    @classmethod
    def validate_event(cls, params: Mapping[str, Any], nodes: Sequence[str]) -> None:
        """Refuses (NemesisError), before anything starts, an event's options this fault
        could never apply on these nodes: a fault that fails only when it fires is a
        fault silently not injected. Subclasses check their own options after these."""
        if "target" in params and params["target"] not in TARGETS:
            raise NemesisError(
                f"target {params['target']!r} is unknown; known: {', '.join(TARGETS)} "
                "(or list the nodes: nodes: [n1, n2])"
            )
        if "nodes" in params:
            named = params["nodes"]
            named = [named] if isinstance(named, str) else named
            if not isinstance(named, list) or not named:
                raise NemesisError(f"nodes must be a list of node names, got {named!r}")
            unknown = [n for n in named if n not in nodes]
            if unknown:
                raise NemesisError(f"nodes {unknown} are not in this cluster ({', '.join(nodes)})")

    # -- helpers ---------------------------------------------------------
    @property
    def live(self) -> Cluster:
        if self.cluster is None:
            raise NemesisError(f"the {self.kind} nemesis was invoked before setup(cluster, rng)")
        return self.cluster

    def _leader(self) -> str | None:
        if self.cluster is None:
            return None
        try:
            return self.cluster.leader(timeout=1.0)
        except ClusterError:
            return None

    def check_options(self, params: Mapping[str, Any]) -> None:
        unknown = set(params) - self.options
        if unknown:
            raise NemesisError(
                f"the {self.kind} nemesis takes {sorted(self.options)}; "
                f"{sorted(unknown)} is not one of them"
            )

    def pick_nodes(
        self, params: Mapping[str, Any], leader: str | None, default: str = "random"
    ) -> list[str]:
        """Resolves ``nodes`` (explicit) or ``target`` (a TARGETS name) to node ids."""
        return resolve_targets(
            self.live.nodes, params.get("nodes"), params.get("target", default), leader, self.rng
        )


def resolve_targets(
    nodes: Sequence[str], explicit: Any, target: str, leader: str | None, rng: random.Random
) -> list[str]:
    """The nodes a target spec names; explicit ``nodes`` win over a ``target`` name."""
    if explicit:
        if isinstance(explicit, str):
            explicit = [explicit]
        unknown = [n for n in explicit if n not in nodes]
        if unknown:
            raise NemesisError(f"nodes {unknown} are not in this cluster ({', '.join(nodes)})")
        return sorted(explicit)
    shuffled = sorted(nodes)
    rng.shuffle(shuffled)
    if target == "leader":
        if leader is None:
            raise NemesisError(
                "target 'leader' but no leader is agreed right now; "
                "use target 'random' or wait for an election"
            )
        return [leader]
    if target == "random":
        return shuffled[:1]
    if target == "minority":
        return sorted(shuffled[: (len(nodes) - 1) // 2])
    if target == "majority":
        return sorted(shuffled[: len(nodes) // 2 + 1])
    if target == "all":
        return sorted(nodes)
    raise NemesisError(
        f"target {target!r} is unknown; known: {', '.join(TARGETS)} "
        "(or list the nodes: nodes: [n1, n2])"
    )


def positive_seconds(value: Any, what: str) -> float:
    """A positive finite number, or NemesisError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not isfinite(value):
        raise NemesisError(f"{what} must be a positive number, got {value!r}")
    if value <= 0:
        raise NemesisError(f"{what} must be positive, got {value!r}")
    return float(value)


def completion(op: Op, type_: str, value: dict[str, Any], error: str | None = None) -> Op:
    return Op(process=NEMESIS, type=type_, f=op.f, value=value, error=error)
