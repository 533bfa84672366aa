"""When each fault starts and stops: a timeline, random from a seed or from YAML.

A schedule is a list of events, each ``at`` a time after the load starts,
for one ``fault``, held ``for`` a duration, with the fault's options::

    seed: 7
    events:
      - {at: 10s, fault: partition, grudge: leader, for: 15s}
      - {at: 30s, fault: kill, target: minority, for: 5s}

``Schedule.random`` draws such a timeline from a seed in Jepsen's rhythm
(a quiet ``interval``, a fault held for about an interval, a quiet interval
…), so the same seed always gives the same timeline. Every run writes the
timeline it actually executed, with choices resolved (which nodes, which
grudge, which offset), so replaying that file repeats the run's faults.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, is_dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from squall import registry
from squall.cluster.base import Cluster
from squall.nemesis.base import Fault, NemesisError
from squall.nemesis.registry import build, options_of, validate_names

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


# Options that say which nodes a fault hits, and the ones that may say "the leader".
CHOICES = ("target", "nodes", "grudge")
LEADER_RELATIVE = ("target", "grudge")


def parse_duration(value: Any, what: str = "duration") -> float:
    """``10``, ``"10s"``, ``"500ms"``, ``"2m"`` -> seconds."""
    if isinstance(value, bool):
        raise NemesisError(f"{what} {value!r} is not a duration; write e.g. 10s or 500ms")
    if isinstance(value, int | float):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise NemesisError(f"{what} {value!r} is not a finite duration; write e.g. 10s")
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise NemesisError(f"{what} {value!r} is not a duration; write e.g. 10s, 500ms or 2m")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds < 0:
        raise NemesisError(f"{what} {value!r} is negative")
    return seconds


def _fmt(seconds: float) -> str:
    return f"{round(seconds, 3):g}s"


@dataclass(frozen=True)
class Event:
    at: float  # seconds after the nemesis starts
    fault: str
    duration: float | None = None  # None: held until the final heal
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"at": _fmt(self.at), "fault": self.fault}
        if self.duration is not None:
            out["for"] = _fmt(self.duration)
        out.update(self.params)
        return out

    @classmethod
    def from_dict(cls, raw: Any, where: str = "event") -> Event:
        if not isinstance(raw, Mapping):
            raise NemesisError(
                f"{where}: an event is a mapping like "
                f"{{at: 10s, fault: kill, for: 5s}}, got {str(raw)[:80]!r}"
            )
        missing = [k for k in ("at", "fault") if k not in raw]
        if missing:
            raise NemesisError(f"{where}: missing {', '.join(missing)} (in {dict(raw)})")
        named = validate_names([str(raw["fault"])])
        if len(named) != 1:
            raise NemesisError(f"{where}: fault {raw['fault']!r} names no fault")
        fault = named[0]
        params = {k: v for k, v in raw.items() if k not in ("at", "fault", "for")}
        allowed = options_of(fault)
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise NemesisError(
                f"{where}: {fault} takes {', '.join(sorted(allowed))}; "
                f"{', '.join(unknown)} is not one of them"
            )
        duration = (
            parse_duration(raw["for"], f"{where} for") if raw.get("for") is not None else None
        )
        return cls(parse_duration(raw["at"], f"{where} at"), fault, duration, params)


# The share of a random schedule's faults that target the leader by name (Jepsen's
# ``primaries``): one in every two. A failover is what the suite exists to time,
# and a uniform draw over the menus hit the leader in about one fault in five,
# so a 30 s run often had none. Pairs, not coin flips: every two consecutive
# faults hold exactly one leader fault, in an order drawn from the seed, so any
# run with two faults has a failover and another fault. The other faults draw
# from the rest of the menus, where a random target may land on the leader too.
LEADER_SHARE = 0.5


def _leader_slots(rng: random.Random) -> Iterator[bool]:
    """For each fault in turn, whether it targets the leader: one of every pair, seeded."""
    while True:
        first = rng.random() < LEADER_SHARE
        yield first
        yield not first


def _leader_relative(entry: Mapping[str, Any]) -> bool:
    return any(entry.get(k) == "leader" for k in LEADER_RELATIVE)


def _draw(rng: random.Random, names: Sequence[str], leader: bool) -> tuple[str, Mapping[str, Any]]:
    """A fault and one of its menu entries: a leader-relative one in a leader slot.

    A slot's wish is kept when some fault can grant it (a user's fault may offer
    no leader entry, and a menu may be only leader entries); otherwise the
    whole menu is drawn from.
    """
    menus = {n: registry.fault(n).menu for n in names}
    fits = {n: [e for e in m if _leader_relative(e) == leader] for n, m in menus.items()}
    able = [n for n in names if fits[n]]
    if not able:
        fault = rng.choice(list(names))
        return fault, rng.choice(menus[fault])
    fault = rng.choice(able)
    return fault, rng.choice(fits[fault])


@dataclass(frozen=True)
class Step:
    at: float
    action: str  # "start" | "stop"
    event: int  # index into Schedule.events


@dataclass(frozen=True)
class Schedule:
    events: tuple[Event, ...] = ()
    seed: int = 0
    # Faults built for this schedule by ``prepare``; shared with the runner so
    # what was configured before ``up`` (a proxy server, a FUSE wrapper) is
    # the same object that injects faults afterwards.
    prepared: dict[str, Fault] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        last_end: dict[str, tuple[float, int]] = {}
        for i, ev in enumerate(sorted(self.events, key=lambda e: e.at)):
            prev = last_end.get(ev.fault)
            if prev is not None and ev.at < prev[0]:
                raise NemesisError(
                    f"two {ev.fault} windows overlap (one starting at {_fmt(ev.at)} "
                    "begins before the previous one ends); a fault kind holds one "
                    "window at a time — shorten 'for' or move 'at'"
                )
            end = ev.at + ev.duration if ev.duration is not None else float("inf")
            last_end[ev.fault] = (end, i)

    # -- building ---------------------------------------------------------
    @classmethod
    def random(
        cls, names: Sequence[str], seed: int, interval: float = 10.0, time_limit: float = 60.0
    ) -> Schedule:
        """Jepsen's rhythm: quiet ~interval, one fault held ~interval, repeat until the limit."""
        names = validate_names(names)
        if interval <= 0:
            raise NemesisError(f"the nemesis interval must be > 0 seconds, got {interval}")
        rng = random.Random(f"schedule:{seed}")
        events: list[Event] = []
        t = interval * rng.uniform(0.5, 1.5)
        leader_slots = _leader_slots(rng)
        while names:
            hold = round(interval * rng.uniform(0.5, 1.5), 3)
            if t + hold > time_limit:
                break
            fault, entry = _draw(rng, names, next(leader_slots))
            params = dict(entry)
            if fault == "clock":
                params["offset"] = round(rng.uniform(1, 60), 3) * rng.choice([-1, 1])
            events.append(Event(round(t, 3), fault, hold, params))
            t += hold + interval * rng.uniform(0.5, 1.5)
        return cls(tuple(events), seed)

    @classmethod
    def from_dict(cls, raw: Any, where: str = "schedule") -> Schedule:
        if isinstance(raw, list):
            raw = {"events": raw}
        if not isinstance(raw, Mapping) or not isinstance(raw.get("events", []), list):
            raise NemesisError(f"{where}: expected a list of events or a mapping with 'events:'")
        events = tuple(
            Event.from_dict(e, f"{where} event {i + 1}")
            for i, e in enumerate(raw.get("events") or [])
        )
        seed = raw.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise NemesisError(f"{where}: seed must be an integer, got {seed!r}")
        return cls(events, seed)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Schedule:
        p = Path(path)
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise NemesisError(f"cannot read the nemesis schedule {p}: {exc.strerror}") from None
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark else ""
            raise NemesisError(f"{p} is not valid YAML{at}; fix the schedule file") from None
        return cls.from_dict(raw, str(p))

    def to_yaml(self) -> str:
        return yaml.safe_dump(
            {"seed": self.seed, "events": [e.to_dict() for e in self.events]},
            sort_keys=False,
            default_flow_style=None,
        )

    # -- checking, before anything starts ------------------------------------
    def validate(self, nodes: Sequence[str], time_limit: float) -> None:
        """Refuses every event that could not be injected as written on these nodes within
        this time limit: a typo found when the fault fires is a fault silently skipped."""
        for i, ev in enumerate(self.events, start=1):
            where = f"nemesis event {i} ({ev.fault} at {_fmt(ev.at)})"
            if ev.at >= time_limit:
                raise NemesisError(
                    f"{where} starts at or after the time limit ({_fmt(time_limit)}): it would "
                    "never fire; move 'at' or raise --time-limit"
                )
            if ev.duration is not None and ev.duration <= 0:
                raise NemesisError(f"{where}: 'for' must be positive, got {_fmt(ev.duration)}")
            check = getattr(registry.fault(ev.fault).load(), "validate_event", None)
            try:
                if check is not None:  # a user's fault factory may offer none
                    check(dict(ev.params), nodes)
            except NemesisError as exc:
                raise NemesisError(f"{where}: {exc}") from None

    # -- reading ------------------------------------------------------------
    def fault_names(self) -> list[str]:
        return list(dict.fromkeys(e.fault for e in self.events))

    def steps(self) -> list[Step]:
        out = []
        for i, ev in enumerate(self.events):
            out.append(Step(ev.at, "start", i))
            if ev.duration is not None:
                out.append(Step(ev.at + ev.duration, "stop", i))
        # At the same instant a stop goes first: it frees the kind for a start.
        return sorted(out, key=lambda s: (s.at, s.action != "stop", s.event))

    def with_intents(self, asked: Sequence[Event]) -> Schedule:
        """This (executed) timeline, with a leader-relative choice put back where the run asked for one.

        An executed timeline pins every choice (``grudge: leader`` became the sides
        it cut when n4 led). A replay elects whoever wins its own elections, so a
        pinned cut of n4 may isolate a follower and no longer reproduce a bug that
        needs the leader cut off (a shrunk early-ack schedule, pinned, reproduced in
        0 of 3 replays); the intent re-resolves against the replay's own leader.
        Random choices stay pinned.
        """
        events = []
        for e in self.events:
            match = next((a for a in asked if a.fault == e.fault and abs(a.at - e.at) < 1.0), None)
            if match is not None and any(match.params.get(k) == "leader" for k in LEADER_RELATIVE):
                params = {k: v for k, v in e.params.items() if k not in CHOICES}
                params.update({k: v for k, v in match.params.items() if k in CHOICES})
                e = Event(e.at, e.fault, e.duration, params)
            events.append(e)
        return replace(self, events=tuple(events))

    # -- before the cluster starts -----------------------------------------
    def prepare(
        self, cluster: Cluster, options: dict[str, dict[str, Any]] | None = None
    ) -> dict[str, Fault]:
        """Builds the faults and lets each ask for its needs in the nodes (call before ``up``)."""
        if not self.prepared:
            self.prepared.update(build(self.fault_names(), cluster.supports, options))
            for fault in self.prepared.values():
                fault.seed = self.seed
                fault.configure(cluster)
        return self.prepared


def load_schedule(cfg: Any) -> Schedule:
    """The schedule a run config asks for: a replayed run's, a YAML file, or random names.

    A replay repeats the run's executed timeline, with leader-relative choices
    made again against the replay's own leader (``Schedule.with_intents``).
    """
    replay = getattr(cfg, "replay", None)
    if replay and (Path(replay) / "nemesis-timeline.yaml").is_file():
        executed = Schedule.from_yaml(Path(replay) / "nemesis-timeline.yaml")
        try:
            fresh = not isinstance(cfg, type) and is_dataclass(cfg)
            asked = load_schedule(replace(cfg, replay=None)).events if fresh else ()
        except (NemesisError, OSError):
            asked = ()  # the schedule file moved: the timeline alone, pinned, still replays
        schedule = executed.with_intents(asked)
    elif getattr(cfg, "nemesis_file", None):
        schedule = Schedule.from_yaml(cfg.nemesis_file)
    else:
        names: Iterable[str] = getattr(cfg, "nemesis", []) or []
        schedule = Schedule.random(
            list(names),
            int(getattr(cfg, "seed", 0) or 0),
            float(getattr(cfg, "nemesis_interval", 10.0)),
            float(getattr(cfg, "time_limit", 60.0)),
        )
    return schedule
