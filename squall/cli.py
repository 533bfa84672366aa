"""``squall``: run a chaos test, re-check a history, (re)build a report, keep a
cluster up for poking, browse the store of runs.

Exit codes (DESIGN.md): 0 valid, 1 invalid, 2 unknown, 3 the run itself
failed or the input was bad. Bad input — a typo in a flag, a bad YAML, an
unknown nemesis — is one line on stderr and exit 3, never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from squall.launch import BadInput, exit_code_of

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Jepsen-style fault injection for a replicated scheduler store.",
)
cluster_app = typer.Typer(
    no_args_is_help=True, help="A cluster left running for a person to poke at."
)
app.add_typer(cluster_app, name="cluster")
hosts_app = typer.Typer(
    no_args_is_help=True, help="Real hosts for --backend ssh: prepare them once, sweep them."
)
app.add_typer(hosts_app, name="hosts")


@functools.cache
def err() -> Console:
    """The stderr console, built on first use: rich's import is a good part of
    the start-up ``squall check`` must not pay. soft_wrap: a line is never
    folded at 80 columns when stderr is no terminal (a CI log)."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


SKIP_DAMAGED = typer.Option(
    "--skip-damaged",
    help="check past damaged lines between ops (the verdict is then unknown at best)",
)


@app.command()
def run(
    file: Annotated[
        Path | None, typer.Option("-f", "--file", help="YAML test file; flags override it")
    ] = None,
    system: Annotated[
        str | None,
        typer.Option(
            help="the system under test: aurora (default), a registered name, or package.module:attr"
        ),
    ] = None,
    workload: Annotated[
        str | None, typer.Option(help="register | set | the system's own (aurora: scheduler)")
    ] = None,
    nemesis: Annotated[
        str | None,
        typer.Option(
            help="comma list (kill,pause,partition,link,disk-stall,clock,power-cut), none, or a YAML schedule file"
        ),
    ] = None,
    nodes: Annotated[int | None, typer.Option(help="cluster size (default 5)")] = None,
    time_limit: Annotated[
        str | None, typer.Option("--time-limit", help="seconds of load, e.g. 60 or 2m")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(help="client workers (default 10)")] = None,
    rate: Annotated[
        float | None, typer.Option(help="target ops/s over all workers; 0 = unthrottled")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="seed for every random choice (printed and stored)")
    ] = None,
    backend: Annotated[str | None, typer.Option(help="docker | local | ssh")] = None,
    inventory: Annotated[
        str | None,
        typer.Option(help="the hosts of --backend ssh: a YAML inventory (README: Real hosts)"),
    ] = None,
    store: Annotated[
        str | None, typer.Option("--store", help="directory of runs (default ./store)")
    ] = None,
    bug: Annotated[
        list[str] | None,
        typer.Option(
            "--bug",
            help="switch one of the system's bug modes on (aurora: stale-read, early-ack, lossy-snapshot, no-fsync, forgive-fsync, rename-before-fsync)",
        ),
    ] = None,
    system_option: Annotated[
        list[str] | None,
        typer.Option(
            "-o",
            "--system-option",
            help="KEY=VALUE (a YAML value) for one of the system's own options (see its README section)",
        ),
    ] = None,
    failover_bound: Annotated[
        float | None, typer.Option("--failover-bound", help="seconds (default 2)")
    ] = None,
    nemesis_interval: Annotated[
        float | None,
        typer.Option("--nemesis-interval", help="seconds between random faults (default 10)"),
    ] = None,
    replay: Annotated[
        Path | None,
        typer.Option("--replay", help="repeat a stored run: its config, seed and fault timeline"),
    ] = None,
    repeat: Annotated[
        int | None,
        typer.Option(
            "--repeat", help="with --replay: run it N times, report how many reproduced it"
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="test name (directory under the store)")] = None,
) -> None:
    """Run a chaos test and check it. Exit 0 valid, 1 invalid, 2 unknown, 3 failed."""
    from squall.run import config as cfgmod
    from squall.run import runner

    overrides: dict[str, object] = {
        "system": system,
        "workload": workload,
        "nodes": nodes,
        "time_limit": time_limit,
        "concurrency": concurrency,
        "rate": rate,
        "seed": seed,
        "backend": backend,
        "inventory": inventory,
        "store": store,
        "bugs": bug or None,
        "failover_bound": failover_bound,
        "nemesis_interval": nemesis_interval,
        "name": name,
    }
    if system_option:
        overrides["system_options"] = cfgmod.parse_options(system_option)
    if nemesis is not None:
        if nemesis.endswith((".yaml", ".yml")) or Path(nemesis).is_file():
            overrides["nemesis_file"] = nemesis
        else:
            overrides["nemesis"] = nemesis
    base_file = str(file) if file else None
    if repeat is not None:
        if replay is None or repeat < 1:
            raise BadInput("--repeat N needs --replay RUN_DIR and N >= 1")
        from squall.run.rundir import resolve_run_dir
        from squall.run.shrink import repeat as repeat_run

        got = repeat_run(resolve_run_dir(replay), repeat, err())
        raise typer.Exit(0 if got["reproduced"] == got["of"] else 1)
    if replay is not None:
        from squall.run.rundir import resolve_run_dir

        run_dir = resolve_run_dir(replay)
        base_file = str(run_dir / "test.yaml")
        overrides["replay"] = str(run_dir)
    cfg = cfgmod.build(base_file, overrides)
    cfg = cfg.resolved()
    _preflight(cfg)
    raise typer.Exit(runner.run(cfg, err()))


def _preflight(cfg: object) -> None:
    """Refuses impossible combinations before anything starts (one line, exit 3)."""
    from squall.nemesis.base import NemesisError
    from squall.run.config import ConfigError
    from squall.run.runner import preflight

    try:
        preflight(cfg)  # type: ignore[arg-type]
    except NemesisError as exc:
        raise ConfigError(str(exc)) from None


@app.command()
def check(
    history: Annotated[
        Path,
        typer.Argument(
            help="history.jsonl, a Jepsen EDN history, or a Porcupine log; or a run directory"
        ),
    ],
    model: Annotated[
        str, typer.Option(help="cas-register | kv | register | task-state")
    ] = "cas-register",
    format: Annotated[
        str | None,
        typer.Option(
            "--format", help="jsonl | edn | etcd-log | porcupine-kv (detected when absent)"
        ),
    ] = None,
    html: Annotated[Path | None, typer.Option(help="write the counterexample page here")] = None,
    time_limit: Annotated[
        float, typer.Option("--time-limit", help="seconds before the verdict is unknown")
    ] = 60.0,
    max_memory: Annotated[
        int | None,
        typer.Option("--max-memory", help="MiB the search's cache may use per key (1024)"),
    ] = None,
    write: Annotated[
        bool,
        typer.Option(
            "--write", help="for a run directory: rewrite its results and report (else print only)"
        ),
    ] = False,
    skip_damaged: Annotated[bool, SKIP_DAMAGED] = False,
) -> None:
    """Check a history for linearizability; prints JSON; exit 0/1/2 (3 for bad input)."""
    from squall.run.check_cmd import run_check

    path = history
    if path.is_dir():
        if (path / "test.yaml").exists() and (path / "history.jsonl").exists():
            from squall.run.runner import check_run_dir

            raise typer.Exit(
                check_run_dir(path.resolve(), err(), write=write, skip_damaged=skip_damaged)
            )
        raise BadInput(
            f"{path} is a directory without history.jsonl; give a history file or a run directory"
        )
    raise typer.Exit(
        run_check(
            str(path),
            model=model,
            fmt=format,
            html=str(html) if html else None,
            time_limit=time_limit,
            skip_damaged=skip_damaged,
            max_memory=max_memory,
        )
    )


@app.command()
def analyze(
    run_dir: Annotated[Path, typer.Argument(help="a run directory, or store/latest")],
    skip_damaged: Annotated[bool, SKIP_DAMAGED] = False,
) -> None:
    """Re-check a stored run (all checkers) and rewrite its results and report."""
    from squall.run.rundir import resolve_run_dir
    from squall.run.runner import check_run_dir

    raise typer.Exit(check_run_dir(resolve_run_dir(run_dir), err(), skip_damaged=skip_damaged))


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="a run directory, or store/latest")],
) -> None:
    """Regenerate report.html for a run directory."""
    from squall.report.run_page import write_report
    from squall.run.rundir import resolve_run_dir

    path = write_report(resolve_run_dir(run_dir))
    print(path)


@app.command()
def serve(
    store: Annotated[Path, typer.Option(help="directory of runs")] = Path("store"),
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8080,
) -> None:
    """Browse the store of runs (newest first) at http://127.0.0.1:PORT/."""
    from squall.report.serve import serve as serve_

    serve_(store, port)


@app.command()
def matrix(
    suite: Annotated[
        Path,
        typer.Argument(
            help="suite YAML (suites/matrix.yaml is the nightly one), or merge SUMMARY..."
        ),
    ] = Path("suites/matrix.yaml"),
    summaries: Annotated[
        list[Path] | None,
        typer.Argument(help="after merge: every shard's store/matrix/<time>.json"),
    ] = None,
    seed: Annotated[
        list[int] | None,
        typer.Option(
            help="seed for every case (default: a fresh one per case); repeat it to run "
            "every case once per seed"
        ),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(help="K/N: run only the K-th of N deterministic slices (then merge)"),
    ] = None,
    store: Annotated[str | None, typer.Option(help="directory of runs")] = None,
    only: Annotated[list[str] | None, typer.Option("--only", help="run just these cases")] = None,
    recheck: Annotated[
        Path | None,
        typer.Option(
            "--recheck",
            help="re-run every checker over a stored matrix's runs (store/matrix/<time>.json); runs nothing",
        ),
    ] = None,
) -> None:
    """Run the proof matrix: every seeded bug caught, the correct store valid.

    ``squall matrix merge SUMMARY...`` joins the shards' summaries into one table,
    page and JUnit file (refusing shards of different suites or code)."""
    from squall.run.matrix import merge, run_matrix
    from squall.run.matrix import recheck as recheck_matrix
    from squall.run.shard import parse_slice

    if str(suite) == "merge":
        if not summaries:
            raise BadInput("squall matrix merge needs every shard's summary: merge A.json B.json")
        raise typer.Exit(merge([str(p) for p in summaries], store=store, console=err()))
    if summaries:
        raise BadInput(f"unexpected arguments after the suite: {' '.join(map(str, summaries))}")
    if recheck is not None:
        raise typer.Exit(recheck_matrix(recheck, console=err()))
    seeds = list(seed or [])
    raise typer.Exit(
        run_matrix(
            suite,
            seed=seeds[0] if len(seeds) == 1 else None,
            store=store,
            only=only,
            console=err(),
            seeds=seeds or None,
            part=parse_slice(shard) if shard else None,
        )
    )


@app.command()
def shrink(
    run_dir: Annotated[Path, typer.Argument(help="an invalid run's directory, or store/latest")],
    tries: Annotated[int, typer.Option(help="replays per candidate; kept if any reproduces")] = 3,
    budget: Annotated[str, typer.Option(help="wall-clock budget, e.g. 30m")] = "30m",
) -> None:
    """Find a smaller fault schedule that still reproduces an invalid run's anomaly."""
    from squall.nemesis.schedule import parse_duration
    from squall.run.rundir import resolve_run_dir
    from squall.run.shrink import Shrinker

    if tries < 1:
        raise BadInput("--tries must be at least 1")
    found = resolve_run_dir(run_dir)
    raise typer.Exit(Shrinker(found, tries, parse_duration(budget, "--budget"), err()).run())


@app.command()
def image(
    system: Annotated[str, typer.Option(help="the system whose node image to build")] = "aurora",
) -> None:
    """Build (or find) a system's node image; prints its tag."""
    from squall import registry
    from squall.cluster.image import ensure_image

    print(ensure_image(registry.system(system).image(), lambda m: err().print(m)))


def _standing(system: str) -> Any:
    """The system's standing cluster (``System.standing``), or one line saying it has none."""
    from squall import registry

    found = getattr(registry.system(system), "standing", None)
    if found is None:
        raise BadInput(f"system {system} offers no standing cluster; use squall run to start one")
    return found()


SYSTEM_OPTION = typer.Option("--system", help="the system whose standing cluster this is")


@cluster_app.command("up")
def cluster_up(
    nodes: Annotated[int, typer.Option()] = 5,
    backend: Annotated[str, typer.Option()] = "docker",
    bug: Annotated[list[str] | None, typer.Option("--bug")] = None,
    system: Annotated[str, SYSTEM_OPTION] = "aurora",
) -> None:
    """Start a cluster and leave it running; prints its client addresses."""
    _standing(system).cluster_up(nodes=nodes, backend=backend, bugs=bug or [], console=err())


@cluster_app.command("down")
def cluster_down(system: Annotated[str, SYSTEM_OPTION] = "aurora") -> None:
    """Remove the standing cluster (and any leftovers of killed runs)."""
    _standing(system).cluster_down(console=err())


@cluster_app.command("status")
def cluster_status(system: Annotated[str, SYSTEM_OPTION] = "aurora") -> None:
    """Show each node of the standing cluster: role, term, indexes."""
    _standing(system).cluster_status(console=err())


INVENTORY_ARG = typer.Argument(help="the inventory YAML (README: Real hosts)")


def _inventory(path: Path) -> Any:
    from squall.cluster.inventory import InventoryError, load_inventory

    try:
        return load_inventory(path)
    except InventoryError as exc:
        raise BadInput(str(exc)) from None


def _on_hosts(work: Any) -> Any:
    """Runs a hosts command; a host that cannot be reached or used is one line, exit 3."""
    from squall.cluster.base import ClusterError

    try:
        return work()
    except ClusterError as exc:
        raise BadInput(str(exc)) from None


@hosts_app.command("prepare")
def hosts_prepare(
    inventory: Annotated[Path, INVENTORY_ARG],
    system: Annotated[str, typer.Option(help="the system whose packages to install")] = "aurora",
) -> None:
    """Install, as root and once, the Debian packages runs need on every host."""
    from squall import registry
    from squall.cluster.hosts import prepare

    done = _on_hosts(lambda: prepare(_inventory(inventory), registry.system(system), err().print))
    for node, what in done.items():
        print(f"{node}: {'; '.join(what)}")


@hosts_app.command("clean")
def hosts_clean(
    inventory: Annotated[Path, INVENTORY_ARG],
    force: Annotated[
        bool, typer.Option(help="also runs whose runner may still live (another machine's)")
    ] = False,
) -> None:
    """Undo every run the hosts still hold: processes, mounts, iptables rules, files."""
    from squall.cluster.hosts import clean

    done = _on_hosts(lambda: clean(_inventory(inventory), err().print, force=force))
    print(json.dumps(done))


@hosts_app.command("status")
def hosts_status(inventory: Annotated[Path, INVENTORY_ARG]) -> None:
    """What of Squall's runs is on each host (JSON); exit 1 if anything is."""
    from squall.cluster.hosts import leftovers

    found = _on_hosts(lambda: leftovers(_inventory(inventory)))
    print(json.dumps(found))
    raise typer.Exit(1 if any(v for h in found.values() for v in h.values()) else 0)


# The commands that start clusters or containers: they first sweep what a killed
# runner left behind. The others (check, report, serve, ...) never touch Docker,
# and must not pay for its SDK and a sweep (``squall check`` starts in < 80 ms).
SWEEPING_COMMANDS = frozenset({"run", "matrix", "shrink", "cluster"})


def _starts_clusters(argv: list[str]) -> bool:
    command = next((a for a in argv if not a.startswith("-")), None)
    return command in SWEEPING_COMMANDS


def _reap_leftovers() -> None:
    """A command that starts clusters first removes what a killed runner left behind."""
    try:
        from squall.run.sweep import sweep_leftovers

        removed = sweep_leftovers()
    except Exception:  # noqa: BLE001 - a sweep that cannot run must not stop the command
        return
    if removed:
        err().print(f"squall: removed leftovers of a killed run: {', '.join(removed)}")


def main(argv: list[str] | None = None) -> int:
    """The whole CLI through typer (``squall.launch.main`` is the console script:
    it takes ``squall check FILE`` without typer and everything else here)."""
    try:
        if _starts_clusters(sys.argv[1:] if argv is None else argv):
            _reap_leftovers()
        rv = app(args=argv, standalone_mode=False)
        return int(rv or 0)
    except (Exception, KeyboardInterrupt) as exc:
        return exit_code_of(exc)


if __name__ == "__main__":
    sys.exit(main())
