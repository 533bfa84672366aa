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
from squall.report.matrix_page import write_matrix_html
from squall.run import config as cfgmod
from squall.run.runner import EXIT_RUN_FAILED
from squall.run.runner import run as run_one

EXPECT: dict[str, bool | str] = {"valid": True, "invalid": False, "unknown": "unknown"}


@dataclass
class Case:
    name: str
    options: dict[str, Any]
    expect: bool | str
    caught_by: list[str] = field(default_factory=list)


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
            Case(raw["name"], options, EXPECT[raw["expect"]], list(raw.get("caught_by") or []))
        )
    if only:
        unknown = set(only) - {c.name for c in cases}
        if unknown:
            raise cfgmod.ConfigError(f"suite {p} has no case {sorted(unknown)}")
        cases = [c for c in cases if c.name in only]
    return cases


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


def run_matrix(
    suite: str | Path,
    seed: int | None = None,
    store: str | None = None,
    only: list[str] | None = None,
    console: Console | None = None,
) -> int:
    console = console or Console(stderr=True)
    cases = load_suite(suite, only)
    outcomes: list[Outcome] = []
    for i, case in enumerate(cases, 1):
        console.rule(f"[{i}/{len(cases)}] {case.name}")
        outcomes.append(run_case(case, seed, store, console))
        if outcomes[-1].interrupted:
            # Ctrl-C (or SIGTERM) ended this case's load; it was healed, collected and
            # checked as any run is. The person wants the matrix to stop, not go on.
            console.print(
                f"[yellow]interrupted: the matrix stops after {i} of {len(cases)} cases[/]"
            )
            break
    return finish(
        outcomes,
        len(cases),
        str(Path(suite).resolve()),
        seed,
        Path(store or cfgmod.RunConfig.store),
        console,
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
            }
            for o in outcomes
        ],
    }
    # Kept beside the runs, so a nightly's table can be compared with last night's.
    saved = store / "matrix" / time.strftime("%Y%m%dT%H%M%SZ.json", time.gmtime())
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(summary, indent=1, default=str))
    page = write_matrix_html(summary, saved.with_suffix(".html"))
    console.print(f"matrix summary: {saved}, {page}")
    print(json.dumps(summary, default=str))
    if interrupted:
        return EXIT_RUN_FAILED  # a partial matrix proves nothing either way
    return 0 if all(o.passed for o in outcomes) else 1
