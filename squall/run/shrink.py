"""``squall shrink RUN_DIR``: the smallest fault schedule that still reproduces a run's anomaly,
and ``squall run --replay RUN --repeat N``: how often a replay reproduces it at all.

A failing run's executed timeline (``nemesis-timeline.yaml``, every random
choice pinned) is delta-debugged: drop events (halves, then quarters... as
ddmin does), then shorten each remaining event, then move the timeline earlier,
then cut the run's time limit to just past the last fault. Every candidate is replayed with the run's own
seed (the same ops per worker) up to ``tries`` times and kept if *any* replay
shows the same anomaly: the same checker fails, and for linearizability on an
operation of the same kind (a stale ``read`` stays a stale read). Faults race
with load, so one failure in a few replays is evidence; ``--repeat`` then
measures how reliable the result is.

Everything is bounded by a wall-clock budget and written down: ``shrink.json``
holds every try (events, time limit, each replay's verdict and deciders) and
``shrunk.yaml`` the smallest schedule, which ``squall run --nemesis
shrunk.yaml`` (with the printed seed and limit) replays.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from squall.nemesis.schedule import Event, Schedule
from squall.run.config import ConfigError, Test, normalize

DEFAULT_TRIES = 3
DEFAULT_BUDGET_S = 30 * 60.0
MARGIN_S = 5.0  # load kept after the last fault ends: the anomaly may show a little later
MIN_LEAD_S = 3.0  # load before the first fault: the cluster settles, the workload gets going


@dataclass(frozen=True, kw_only=True)
class Anomaly:
    """What a run's failure was: the deciding checker and, for linearizability, the op's kind."""

    checker: str
    op: str | None = None

    def seen_in(self, results: Mapping[str, Any]) -> bool:
        res = results.get(self.checker)
        if not isinstance(res, dict) or res.get("valid") is not False:
            return False
        return self.op is None or self.op in failing_ops(res)

    def describe(self) -> str:
        return self.checker + (f" on a {self.op}" if self.op else "")


def failing_ops(result: Mapping[str, Any]) -> set[str]:
    """The kinds (f) of the operations a linearizability counterexample points at."""
    ce = result.get("counterexample") or {}
    ops = list(ce.get("unlinearizable") or []) + [ce.get("blocking")]
    return {str(o["f"]) for o in ops if isinstance(o, dict) and o.get("f")}


def anomaly_of(results: Mapping[str, Any]) -> Anomaly:
    deciders = [k for k, v in results.items() if isinstance(v, dict) and v.get("valid") is False]
    if not deciders:
        raise ConfigError(
            "the run is not invalid: there is no anomaly to shrink toward "
            "(shrink a run whose results.json says valid: false)"
        )
    first = "linearizable" if "linearizable" in deciders else deciders[0]
    ops = sorted(failing_ops(results[first])) if first == "linearizable" else []
    return Anomaly(checker=first, op=ops[0] if ops else None)


@dataclass(kw_only=True)
class Try:
    events: list[dict[str, Any]]
    time_limit: float
    replays: list[dict[str, Any]] = field(default_factory=list)
    reproduced: bool = False
    seconds: float = 0.0


def base_test(run_dir: Path, store: Path) -> Test:
    """The run's own test, replayable: same system, workload, seed, bugs and options."""
    raw = yaml.safe_load((run_dir / "test.yaml").read_text()) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{run_dir / 'test.yaml'} is not a mapping of options")
    data = normalize(raw, str(run_dir / "test.yaml"))
    for key in ("nemesis", "nemesis_file", "replay", "name"):
        data.pop(key, None)
    return Test(**{**data, "store": str(store)})


def replay_once(
    base: Test,
    events: Sequence[dict[str, Any]],
    time_limit: float,
    seed_of: int,
    where: Path,
    console: Console,
) -> dict[str, Any]:
    """One run of ``events`` (a timeline) within ``time_limit``; its verdict and results."""
    from squall.run.runner import Run

    where.mkdir(parents=True, exist_ok=True)
    schedule = where / f"candidate-{time.monotonic_ns()}.yaml"
    schedule.write_text(yaml.safe_dump({"seed": seed_of, "events": list(events)}, sort_keys=False))
    test = dataclasses.replace(
        base, nemesis_file=str(schedule), time_limit=time_limit, name="shrink"
    )
    run = Run(test, console)
    code = run.execute()
    results = json.loads((run.run_dir / "results.json").read_text())
    return {
        "run_dir": str(run.run_dir),
        "exit": code,
        "valid": results.get("valid"),
        "deciders": [
            k for k, v in results.items() if isinstance(v, dict) and v.get("valid") is False
        ],
        "results": results,
    }


class Shrinker:
    def __init__(
        self,
        run_dir: Path,
        tries: int = DEFAULT_TRIES,
        budget_s: float = DEFAULT_BUDGET_S,
        console: Console | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.tries = tries
        self.console = console or Console(stderr=True)
        self.deadline = time.monotonic() + budget_s
        self.out = run_dir / "shrink"
        results = json.loads((run_dir / "results.json").read_text())
        self.anomaly = anomaly_of(results)
        self.base = base_test(run_dir, self.out / "runs")
        timeline = Schedule.from_yaml(run_dir / "nemesis-timeline.yaml")
        self.seed = timeline.seed
        self.start = [e.to_dict() for e in timeline.with_intents(self.original()).events]
        self.start_limit = float(self.base.time_limit)
        self.log: list[Try] = []
        self.confirmations: list[dict[str, Any]] = []

    def original(self) -> list[Event]:
        """The schedule the run was asked for (a file, or the random one its seed draws)."""
        from squall.nemesis.schedule import load_schedule

        raw = yaml.safe_load((self.run_dir / "test.yaml").read_text()) or {}
        asked = Test(**normalize(raw, str(self.run_dir / "test.yaml")))
        try:
            return list(load_schedule(dataclasses.replace(asked, replay=None)).events)
        except Exception:  # noqa: BLE001 - a schedule file that moved: the timeline alone serves
            return []

    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline

    def attempt(self, events: list[dict[str, Any]], time_limit: float) -> bool:
        t = Try(events=events, time_limit=time_limit)
        t0 = time.monotonic()
        for i in range(self.tries):
            if self.out_of_time():
                break
            self.console.rule(
                f"try {len(self.log) + 1}: {len(events)} events, {time_limit:g}s, "
                f"replay {i + 1}/{self.tries}"
            )
            r = replay_once(
                self.base, events, time_limit, self.seed, self.out / "runs", self.console
            )
            seen = self.anomaly.seen_in(r.pop("results"))
            t.replays.append({**r, "reproduced": seen})
            if seen:
                t.reproduced = True
                break
        t.seconds = round(time.monotonic() - t0, 1)
        self.log.append(t)
        self.save(events if t.reproduced else None, time_limit if t.reproduced else None)
        return t.reproduced

    # -- the three passes ------------------------------------------------------
    def drop_events(self, events: list[dict[str, Any]], limit: float) -> list[dict[str, Any]]:
        """ddmin: try without each of n chunks, from halves down to single events."""
        n = 2
        while len(events) >= 2 and not self.out_of_time():
            size = max(1, len(events) // n)
            chunks = [events[i : i + size] for i in range(0, len(events), size)]
            for i in range(len(chunks)):
                rest = [e for j, c in enumerate(chunks) if j != i for e in c]
                if rest and self.attempt(rest, limit):
                    events, n = rest, max(n - 1, 2)
                    break
            else:
                if size == 1:
                    break
                n = min(len(events), n * 2)
        return events

    def shorten_events(self, events: list[dict[str, Any]], limit: float) -> list[dict[str, Any]]:
        """Halves each remaining event's duration for as long as the anomaly still shows."""
        for i in range(len(events)):
            while not self.out_of_time():
                held = _seconds(events[i].get("for"))
                if held is None or held < 2:
                    break
                shorter = [dict(x) for x in events]
                shorter[i]["for"] = f"{round(held / 2, 3):g}s"
                if not self.attempt(shorter, limit):
                    break
                events = shorter
        return events

    def advance_events(self, events: list[dict[str, Any]], limit: float) -> list[dict[str, Any]]:
        """Moves the whole timeline earlier (the first fault's start halved, at least
        ``MIN_LEAD_S`` of load before it) for as long as the anomaly still shows."""
        while events and not self.out_of_time():
            first = min(_seconds(e.get("at")) or 0 for e in events)
            shift = round((first - max(first / 2, MIN_LEAD_S)), 3)
            if shift < 1:
                break
            earlier = [
                {**e, "at": f"{round((_seconds(e.get('at')) or 0) - shift, 3):g}s"} for e in events
            ]
            if not self.attempt(earlier, limit):
                break
            events = earlier
        return events

    def shorten_load(self, events: list[dict[str, Any]], limit: float) -> float:
        end = (
            max((_seconds(e.get("at")) or 0) + (_seconds(e.get("for")) or 0) for e in events)
            if events
            else 0.0
        )
        target = max(end + MARGIN_S, 5.0)
        if target < limit and not self.out_of_time() and self.attempt(events, round(target, 1)):
            return round(target, 1)
        return limit

    def confirm(
        self, events: list[dict[str, Any]], limit: float
    ) -> tuple[list[dict[str, Any]], float]:
        """The smallest accepted schedule that reproduces in at least 2 of ``tries`` replays.

        A candidate is kept during the search if any replay reproduces (faults race
        with load: one failure is evidence), so the smallest may be marginal (a
        partition halved until the majority barely elects in time). Walking back
        through the accepted candidates, the first that reproduces reliably is the
        answer; if none does, the smallest is kept and the rate says so.
        """
        accepted = [(t.events, t.time_limit) for t in self.log if t.reproduced]
        if not accepted or (accepted[-1][0], accepted[-1][1]) != (events, limit):
            accepted.append((events, limit))
        need = min(2, self.tries)
        for cand_events, cand_limit in reversed(accepted):
            if self.out_of_time():
                break
            hits = 0
            for i in range(self.tries):
                self.console.rule(
                    f"confirming {len(cand_events)} events, {cand_limit:g}s: "
                    f"replay {i + 1}/{self.tries}"
                )
                r = replay_once(
                    self.base, cand_events, cand_limit, self.seed, self.out / "runs", self.console
                )
                hits += self.anomaly.seen_in(r.pop("results"))
                if hits >= need or hits + (self.tries - i - 1) < need:
                    break
            self.confirmations.append(
                {
                    "events": cand_events,
                    "time_limit": cand_limit,
                    "reproduced": hits,
                    "needed": need,
                }
            )
            if hits >= need:
                return cand_events, cand_limit
        return events, limit

    def run(self) -> int:
        self.console.print(
            f"shrinking {self.run_dir}: {len(self.start)} events, "
            f"{self.start_limit:g}s of load, toward {self.anomaly.describe()} "
            f"({self.tries} replays a try, seed {self.seed})"
        )
        events, limit = self.start, self.start_limit
        events = self.drop_events(events, limit)
        events = self.shorten_events(events, limit)
        events = self.advance_events(events, limit)
        limit = self.shorten_load(events, limit)
        events, limit = self.confirm(events, limit)
        found = any(t.reproduced for t in self.log) or not self.log
        self.save(events, limit, done=True)
        self.console.print(
            f"smallest: {len(events)} of {len(self.start)} events, {limit:g}s of "
            f"load, after {len(self.log)} tries -> {self.out / 'shrunk.yaml'}"
        )
        return 0 if found else 1

    def save(
        self, events: list[dict[str, Any]] | None, limit: float | None, done: bool = False
    ) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        if events is not None:
            self.best = (events, limit)
        best_events, best_limit = getattr(self, "best", (self.start, self.start_limit))
        (self.out / "shrunk.yaml").write_text(
            f"# replay: squall run -f {self.run_dir / 'test.yaml'} --nemesis THIS_FILE "
            f"--time-limit {best_limit:g}\n"
            + yaml.safe_dump({"seed": self.seed, "events": best_events}, sort_keys=False)
        )
        (self.out / "shrink.json").write_text(
            json.dumps(
                {
                    "run_dir": str(self.run_dir),
                    "anomaly": dataclasses.asdict(self.anomaly),
                    "tries_per_candidate": self.tries,
                    "done": done,
                    "before": {"events": len(self.start), "time_limit": self.start_limit},
                    "after": {"events": len(best_events), "time_limit": best_limit},
                    "replay": f"squall run -f {self.run_dir / 'test.yaml'} --nemesis "
                    f"{self.out / 'shrunk.yaml'} --time-limit {best_limit:g}",
                    "tries": [dataclasses.asdict(t) for t in self.log],
                    "confirmations": self.confirmations,
                },
                indent=1,
                default=str,
            )
        )


def _seconds(value: Any) -> float | None:
    from squall.nemesis.schedule import parse_duration

    return None if value is None else parse_duration(value)


# -- replay fidelity --------------------------------------------------------------------


def repeat(run_dir: Path, n: int, console: Console | None = None) -> dict[str, Any]:
    """Replays a run ``n`` times; how many came out as it did (verdict and deciding checker)."""
    from squall.run.runner import Run

    console = console or Console(stderr=True)
    original = json.loads((run_dir / "results.json").read_text())
    want = original.get("valid")
    anomaly = anomaly_of(original) if want is False else None
    base = dataclasses.replace(
        base_test(run_dir, run_dir / "replays"), replay=str(run_dir), name="replay"
    )
    rows = []
    for i in range(n):
        console.rule(f"replay {i + 1}/{n} of {run_dir}")
        run = Run(base, console)
        code = run.execute()
        results = json.loads((run.run_dir / "results.json").read_text())
        same = results.get("valid") == want and (anomaly is None or anomaly.seen_in(results))
        rows.append(
            {
                "run_dir": str(run.run_dir),
                "exit": code,
                "valid": results.get("valid"),
                "reproduced": same,
            }
        )
    summary = {
        "run_dir": str(run_dir),
        "original": want,
        "anomaly": dataclasses.asdict(anomaly) if anomaly else None,
        "replays": rows,
        "reproduced": sum(r["reproduced"] for r in rows),
        "of": n,
    }
    out = run_dir / "replays"
    out.mkdir(parents=True, exist_ok=True)
    (out / "repeat.json").write_text(json.dumps(summary, indent=1, default=str))
    from squall.report.replay_page import write_repeat_page

    write_repeat_page(summary, out / "repeat.html")
    what = anomaly.describe() if anomaly else f"valid={want}"
    console.print(
        f"reproduced {summary['reproduced']} of {n} replays ({what}); {out / 'repeat.html'}"
    )
    return summary
