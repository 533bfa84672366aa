"""The proof matrix: a green run means something only if a broken store goes red.

A suite (YAML) lists cases — workload, faults, store bug mode, expected
verdict and the checker that must catch it — runs each as a real ``squall
run``, and prints a table: case, expected, got, which checker decided, time
to detection (the first invalid evidence in the history, from the start of
the run), and the run directory. Exit 0 only if every case came out as
expected.

```yaml
defaults: {backend: docker, nodes: 5, time_limit: 30}
cases:
  - name: stale-read
    run: {workload: register, nemesis_file: schedules/isolate-leader.yaml, bugs: [stale-read]}
    expect: invalid
    caught_by: [linearizable]
```
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from squall.report.evidence import detection_seconds, evidence
from squall.report.junit import write_matrix_junit
from squall.report.matrix_page import write_matrix_html
from squall.run import config as cfgmod
from squall.run.runner import EXIT_RUN_FAILED
from squall.run.runner import run as run_one
from squall.run.shard import (
    Slice,
    check_joinable,
    code_fingerprint,
    deal,
    expected_seconds,
    load_summaries,
    relocated,
    suite_fingerprint,
)

EXPECT: dict[str, bool | str] = {"valid": True, "invalid": False, "unknown": "unknown"}


@dataclass
class Case:
    name: str
    options: dict[str, Any]
    expect: bool | str
    caught_by: list[str] = field(default_factory=list)
    expected_s: float | None = None  # how long it takes, for balancing shards


@dataclass(frozen=True)
class Unit:
    """One run of a matrix: a case with a seed, at its place in the whole suite's order."""

    index: int
    case: Case
    seed: int | None


@dataclass
class Outcome:
    case: Case
    got: Any
    deciders: list[str]
    detection_s: float | None
    seconds: float
    run_dir: str
    figures: dict[str, Any]
    evidence: str = ""
    seed: int | None = None
    interrupted: bool = False
    unit: int = 0  # its place in the whole suite's units (a merge puts shards back in order)

    @property
    def replay(self) -> str | None:
        """The one command that runs this case again: same config, seed and fault timeline."""
        return f"squall run --replay {self.run_dir}" if self.run_dir != "-" else None

    @property
    def passed(self) -> bool:
        if self.got != self.case.expect:
            return False
        return all(c in self.deciders for c in self.case.caught_by)


def load_suite(path: str | Path, only: list[str] | None = None) -> list[Case]:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise cfgmod.ConfigError(f"suite {p}: {exc}") from None
    defaults = dict(data.get("defaults") or {})
    cases: list[Case] = []
    for i, raw in enumerate(data.get("cases") or []):
        if "name" not in raw or "expect" not in raw:
            raise cfgmod.ConfigError(f"suite {p}: case #{i + 1} needs a name and an expect")
        if raw["expect"] not in EXPECT:
            raise cfgmod.ConfigError(
                f"suite {p}: case {raw['name']}: expect must be one of {', '.join(EXPECT)}"
            )
        options = {**defaults, **(raw.get("run") or {})}
        if "nemesis_file" in options:  # relative to the suite file
            options["nemesis_file"] = str((p.parent / options["nemesis_file"]).resolve())
        # Every case's options are checked now, not 20 minutes in (a schedule file
        # that moved, a misspelt bug mode).
        cfgmod.RunConfig(**cfgmod.normalize(options, f"suite {p}: case {raw['name']}")).resolved()
        cases.append(
            Case(
                raw["name"],
                options,
                EXPECT[raw["expect"]],
                list(raw.get("caught_by") or []),
                raw.get("expected_s"),
            )
        )
    if only:
        unknown = set(only) - {c.name for c in cases}
        if unknown:
            raise cfgmod.ConfigError(f"suite {p} has no case {sorted(unknown)}")
        cases = [c for c in cases if c.name in only]
    return cases


def run_unit(unit: Unit, store: str | None, console: Console) -> Outcome:
    outcome = run_case(unit.case, unit.seed, store, console)
    outcome.unit = unit.index
    return outcome


def run_case(case: Case, seed: int | None, store: str | None, console: Console) -> Outcome:
    options = dict(case.options)
    if seed is not None:
        options["seed"] = seed
    if store:
        options["store"] = store
    options.setdefault("name", f"matrix-{case.name}")
    t0 = time.monotonic()
    try:
        cfg = cfgmod.RunConfig(
            **cfgmod.normalize(options, f"case {case.name}")
        ).resolved()  # seed fixed here
    except cfgmod.ConfigError as exc:
        # Checked when the suite was loaded: something changed since (a file moved).
        # One case cannot run; the others still can, and the table says why.
        console.print(f"[red]case {case.name} cannot run:[/] {exc}")
        return Outcome(case, "run failed", [], None, 0.0, "-", {}, str(exc), options.get("seed"))
    code = run_one(cfg, console)
    seconds = time.monotonic() - t0
    return judge(case, code, Path(cfg.store) / (cfg.name or "") / "latest", seconds, cfg.seed)


def judge(case: Case, code: int, run_dir: Path, seconds: float, seed: int | None) -> Outcome:
    """The row for a case whose run (or re-check) ended with ``code`` in ``run_dir``."""
    results: dict[str, Any] = {}
    if (run_dir / "results.json").exists():
        results = json.loads((run_dir / "results.json").read_text())
    got: Any = results.get("valid", "unknown") if code != EXIT_RUN_FAILED else "run failed"
    deciders = [k for k, v in results.items() if isinstance(v, dict) and v.get("valid") is False]
    history = run_dir / "history.jsonl"
    detected = detection_seconds(results, history)
    named = [c for c in case.caught_by if c in deciders] + [
        c for c in deciders if c not in case.caught_by
    ]
    return Outcome(
        case,
        got,
        deciders,
        detected,
        seconds,
        str(run_dir.resolve()) if run_dir.exists() else "-",
        figures(results),
        evidence(results, named, detected, history),
        seed,
        bool(results.get("interrupted")),
    )


def figures(results: dict[str, Any]) -> dict[str, Any]:
    """A few numbers worth a column: write latency under the read storm, failover."""
    out: dict[str, Any] = {}
    writes = (results.get("starvation") or {}).get("writes") or {}
    for k in ("p50", "p99", "max"):
        if isinstance(writes.get(k), int | float):
            out[f"write_{k}"] = writes[k]
    for kind, row in ((results.get("failover") or {}).get("by_kind") or {}).items():
        if isinstance(row.get("write_max_s"), int | float):
            out[f"{kind}_failover_max_s"] = row["write_max_s"]
    return out


def render(outcomes: list[Outcome], console: Console) -> None:
    # In a log (CI, nightly cron) the console is 80 columns wide and the table
    # would wrap every cell; a log has room for the whole row.
    out = console if console.is_terminal else Console(file=console.file, width=240, highlight=False)
    table = Table(
        "case",
        "expected",
        "got",
        "caught by",
        "detected at",
        "took",
        "seed",
        "figures",
        "run dir",
        title="squall matrix",
    )
    for o in outcomes:
        mark = "[green]✔[/]" if o.passed else "[red]✘[/]"
        det = f"{o.detection_s:.1f}s" if o.detection_s is not None else "-"
        figs = " ".join(f"{k}={v}" for k, v in o.figures.items()) or "-"
        table.add_row(
            f"{mark} {o.case.name}",
            json.dumps(o.case.expect),
            json.dumps(o.got),
            ",".join(o.deciders) or "-",
            det,
            f"{o.seconds:.0f}s",
            str(o.seed),
            figs,
            o.run_dir,
        )
    out.print(table)
    for o in outcomes:
        if o.evidence:
            out.print(f"[bold]{o.case.name}[/]: {o.evidence}", highlight=False)
        if not o.passed and o.replay:
            out.print(f"  replay it: {o.replay}", highlight=False)


def plan(cases: list[Case], seeds: list[int | None], part: Slice | None = None) -> list[Unit]:
    """The units to run: cases × seeds in suite order, or one deterministic slice of them."""
    units = [
        Unit(i, case, seed) for i, (case, seed) in enumerate((c, s) for c in cases for s in seeds)
    ]
    if part is None:
        return units
    costs = [expected_seconds(u.case.options, u.case.expected_s) for u in units]
    return [units[i] for i in deal(costs, part.n)[part.k - 1]]


def run_matrix(
    suite: str | Path,
    seed: int | None = None,
    store: str | None = None,
    only: list[str] | None = None,
    console: Console | None = None,
    seeds: list[int] | None = None,
    part: Slice | None = None,
) -> int:
    console = console or Console(stderr=True)
    cases = load_suite(suite, only)
    chosen: list[int | None] = list(seeds) if seeds else [seed]
    units = plan(cases, chosen, part)
    if part is not None:
        console.print(f"shard {part}: {len(units)} of {len(cases) * len(chosen)} runs")
    outcomes: list[Outcome] = []
    for i, unit in enumerate(units, 1):
        console.rule(f"[{i}/{len(units)}] {unit.case.name}")
        outcomes.append(run_unit(unit, store, console))
        if outcomes[-1].interrupted:
            # Ctrl-C (or SIGTERM) ended this case's load; it was healed, collected and
            # checked as any run is. The person wants the matrix to stop, not go on.
            console.print(
                f"[yellow]interrupted: the matrix stops after {i} of {len(units)} runs[/]"
            )
            break
    schedules = [c.options["nemesis_file"] for c in cases if c.options.get("nemesis_file")]
    return finish(
        outcomes,
        len(units),
        str(Path(suite).resolve()),
        seed,
        Path(store or cfgmod.RunConfig.store),
        console,
        fingerprint={
            "suite": suite_fingerprint(Path(suite), schedules)
            + (f"+only:{sorted(only)}" if only else ""),
            "code": code_fingerprint(),
            "seeds": chosen,
        },
        shard={"k": part.k, "n": part.n} if part else None,
    )


def outcome_of(row: dict[str, Any], run_dir: str | None = None) -> Outcome:
    """A stored summary row as an outcome again (a merge tables rows it did not run)."""
    case = Case(row["case"], {}, row["expected"], list(row.get("must_catch") or []))
    return Outcome(
        case,
        row["got"],
        list(row.get("caught_by") or []),
        row.get("detection_s"),
        float(row.get("seconds") or 0),
        run_dir or row.get("run_dir") or "-",
        dict(row.get("figures") or {}),
        row.get("evidence") or "",
        row.get("seed"),
        unit=int(row.get("unit") or 0),
    )


def merge(paths: list[str], store: str | None = None, console: Console | None = None) -> int:
    """Joins the summaries of every shard of one matrix into one table, page and JUnit file."""
    console = console or Console(stderr=True)
    summaries = load_summaries(paths)
    check_joinable(summaries)
    outcomes = sorted(
        (
            outcome_of(row, relocated(row.get("run_dir") or "-", path, summary.get("store")))
            for path, summary in summaries
            for row in summary["rows"]
        ),
        key=lambda o: o.unit,
    )
    first = summaries[0][1]
    return finish(
        outcomes,
        sum(int(s.get("of") or len(s["rows"])) for _, s in summaries),
        first.get("suite"),
        first.get("seed"),
        Path(store or cfgmod.RunConfig.store),
        console,
        fingerprint=first["fingerprint"],
        shard=None,
        merged_from=[str(p) for p, _ in summaries],
    )


def recheck(summary_path: str | Path, console: Console | None = None) -> int:
    """Re-runs every checker over the runs a stored matrix made, and tables them anew.

    For a checker that changed since (a fix, a stricter bound): last night's
    histories judged by today's checkers, without running the store again.
    """
    from squall.run.runner import check_run_dir

    console = console or Console(stderr=True)
    path = Path(summary_path)
    try:
        old = json.loads(path.read_text())
        rows = old["rows"]
    except (OSError, ValueError, KeyError) as exc:
        raise cfgmod.ConfigError(
            f"{path} is not a matrix summary ({exc}); give a "
            "store/matrix/<time>.json that squall matrix wrote"
        ) from None
    suite = old.get("suite")
    known = {c.name: c for c in load_suite(suite)} if suite and Path(suite).is_file() else {}
    outcomes = []
    for i, row in enumerate(rows, 1):
        console.rule(f"[{i}/{len(rows)}] {row['case']} (re-check)")
        case = known.get(row["case"]) or Case(
            row["case"], {}, row["expected"], list(row.get("must_catch") or [])
        )
        run_dir = Path(row["run_dir"])
        if not (run_dir / "test.yaml").is_file():
            console.print(f"[red]{row['case']}: its run directory {run_dir} is gone[/]")
            outcomes.append(
                Outcome(
                    case,
                    "run failed",
                    [],
                    None,
                    0.0,
                    "-",
                    {},
                    f"{run_dir} is gone",
                    row.get("seed"),
                )
            )
            continue
        code = check_run_dir(run_dir, console)
        outcomes.append(judge(case, code, run_dir, float(row.get("seconds") or 0), row.get("seed")))
    return finish(
        outcomes,
        int(old.get("of") or len(rows)),
        suite,
        old.get("seed"),
        path.parent.parent,
        console,
        rechecked_from=str(path),
    )


def finish(
    outcomes: list[Outcome],
    of: int,
    suite: str | None,
    seed: int | None,
    store: Path,
    console: Console,
    **extra: Any,
) -> int:
    """Prints the table, keeps the summary (JSON and a page) under ``store/matrix``; the exit code."""
    interrupted = len(outcomes) < of or any(o.interrupted for o in outcomes)
    render(outcomes, console)
    summary = {
        "suite": suite,
        "store": str(store.resolve()),
        "seed": seed,
        "cases": len(outcomes),
        "of": of,
        "interrupted": interrupted,
        **extra,
        "passed": sum(o.passed for o in outcomes),
        "rows": [
            {
                "case": o.case.name,
                "passed": o.passed,
                "expected": o.case.expect,
                "got": o.got,
                "caught_by": o.deciders,
                "must_catch": o.case.caught_by,
                "detection_s": o.detection_s,
                "seconds": round(o.seconds, 1),
                "figures": o.figures,
                "evidence": o.evidence,
                "seed": o.seed,
                "run_dir": o.run_dir,
                "replay": o.replay,
                "unit": o.unit,
            }
            for o in outcomes
        ],
    }
    # Kept beside the runs, so a nightly's table can be compared with last night's.
    part = extra.get("shard")
    tag = (
        f"-shard{part['k']}of{part['n']}" if part else ("-merged" if "merged_from" in extra else "")
    )
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + tag
    saved = store / "matrix" / f"{stamp}.json"
    n = 1
    while saved.exists():  # two shards of one machine may finish in the same second
        n += 1
        saved = store / "matrix" / f"{stamp}-{n}.json"
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(summary, indent=1, default=str))
    page = write_matrix_html(summary, saved.with_suffix(".html"))
    junit = write_matrix_junit(summary, saved.with_suffix(".xml"))
    console.print(f"matrix summary: {saved}, {page}, {junit}")
    print(json.dumps(summary, default=str))
    if interrupted:
        return EXIT_RUN_FAILED  # a partial matrix proves nothing either way
    return 0 if all(o.passed for o in outcomes) else 1
