"""One run, start to verdict: cluster up, load + faults, heal, final reads,
collect, check, report.

Data flows one way: the runner builds a cluster for the test's system, hands
the system's clients to the workload's workers and the cluster to the
nemesis, records one history, and passes it (with what the system collected
from the nodes) to the checkers. Nothing here knows which system it runs. Whatever
goes wrong — a failed setup, Ctrl-C, a crash of a worker — the same ``finally``
heals, collects logs and tears the cluster down, and the history recorded so
far is checked: a run directory always holds what was recorded.
"""

from __future__ import annotations

import inspect
import json
import random
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from squall import registry
from squall.checkers.base import CheckContext, Checker, compose
from squall.cluster.base import Cluster, ClusterSpec
from squall.history import FAIL, INFO, INVOKE, HistoryRead, HistoryWriter, Op, load_history
from squall.nemesis.runner import NemesisRunner
from squall.protocols import System
from squall.run import rundir as store
from squall.run import verdict
from squall.run.config import ConfigError, Test, coerce, dump_yaml, system_name
from squall.run.progress import RunProgress
from squall.run.sampler import SAMPLES_FILE, StatusSampler, read_samples
from squall.workloads import Invocation, Workload, get_workload

EXIT = {True: 0, False: 1, "unknown": 2}
EXIT_RUN_FAILED = 3
BACKENDS = {
    "docker": "squall.cluster.docker:DockerCluster",
    "local": "squall.cluster.local:LocalCluster",
    "ssh": "squall.cluster.ssh:SshCluster",
}


class RunFailed(RuntimeError):
    """The run itself could not be carried out (setup error, bad input): exit 3."""


@dataclass
class Counters:
    ok: int = 0
    fail: int = 0
    info: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str) -> None:
        with self.lock:
            setattr(self, kind, getattr(self, kind) + 1)


def make_cluster(
    cfg: Test, system: System, run_dir: Path, progress: Callable[[str], None] | None = None
) -> Cluster:
    spec = ClusterSpec(
        name=run_id(run_dir),
        nodes=cfg.nodes,
        options=dict(cfg.system_options),
        bugs=tuple(cfg.bugs),
        bug_nodes=tuple(cfg.bug_nodes),
        data_root=run_dir / "nodes-data",
        inventory=cfg.inventory,
    )
    backend = registry.load(BACKENDS[cfg.backend])
    # Backends that take a long time to start (building an image, logging in) say so.
    takes = inspect.signature(backend).parameters
    kwargs = {"progress": progress} if progress is not None and "progress" in takes else {}
    return backend(spec, system, **kwargs)  # type: ignore[no-any-return]


def preflight(cfg: Test) -> None:
    """Refuses, before anything starts, what this test cannot do: a workload whose client
    protocol the system lacks, a fault the backend or the system cannot take."""
    from squall.nemesis.base import NemesisError
    from squall.nemesis.registry import refusals
    from squall.nemesis.schedule import load_schedule

    system = cfg.system_object()
    check_client(workload_for(cfg, system), system)
    backend = registry.load(BACKENDS[cfg.backend])
    try:
        schedule = load_schedule(cfg)
        names = dict.fromkeys([*cfg.nemesis, *schedule.fault_names()])
        said = refusals(names, backend.supports, backend.kind, system)
        if said:
            raise ConfigError("; ".join(said))
        schedule.validate(
            ClusterSpec(name="preflight", nodes=cfg.nodes).node_names(), cfg.time_limit
        )
    except NemesisError as exc:
        raise ConfigError(str(exc)) from None
    if (cfg.nemesis or cfg.nemesis_file) and not schedule.events:
        raise ConfigError(
            f"the run asks for faults but its schedule holds none within {cfg.time_limit:g}s: "
            "each fault follows a quiet ~nemesis_interval and is held ~nemesis_interval, so "
            "raise --time-limit (past 3 intervals), lower --nemesis-interval, or say --nemesis none"
        )


def workload_for(cfg: Test, system: System) -> Workload:
    if isinstance(cfg.workload, Workload):
        return cfg.workload
    return get_workload(cfg.workload, cfg.concurrency, cfg.workload_options, system)


def check_client(workload: Workload, system: System) -> None:
    """Refuses a workload whose op protocol the system's client does not implement."""
    if workload.needs is None:
        return
    client = system.client(lambda: {}, 0, {})
    if not isinstance(client, workload.needs):
        wanted = ", ".join(n for n in dir(workload.needs) if not n.startswith("_"))
        raise ConfigError(
            f"workload {workload.name} needs a client with {wanted} "
            f"({workload.needs.__name__}); system {system.name}'s client "
            f"{type(client).__name__} lacks them"
        )


def run_id(run_dir: Path) -> str:
    import hashlib

    return "r" + hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:8]


class Run:
    """Holds one run's moving parts so teardown can reach all of them."""

    def __init__(self, cfg: Test, console: Console | None = None) -> None:
        self.cfg = cfg.resolved()
        preflight(self.cfg)  # the whole run is valid, or nothing starts (not even its directory)
        self.system = self.cfg.system_object()
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.stop = threading.Event()
        self.counters = Counters()
        self.cluster: Cluster | None = None
        self.history: HistoryWriter | None = None
        self.nemesis: NemesisRunner | None = None
        self.sampler: StatusSampler | None = None
        self.errors: list[str] = []
        self.interrupted = False
        self.run_dir = store.new_run_dir(self.cfg.store, self.cfg.name or "run")

    # -- the whole run ---------------------------------------------------
    def execute(self) -> int:
        cfg = self.cfg
        self.console.print(
            f"[bold]squall[/] {cfg.name}  seed [bold]{cfg.seed}[/]  → {self.run_dir}"
        )
        (self.run_dir / "test.yaml").write_text(dump_yaml(cfg, {"command": replay_command(cfg)}))
        old_handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        if threading.current_thread() is threading.main_thread():
            # SIGTERM (a CI job's timeout, systemd) ends a run as gracefully as Ctrl-C:
            # atexit alone would not run on it, and containers would be left behind.
            for sig in old_handlers:
                signal.signal(sig, self._on_sigint)
        try:
            self._load_phase()
        except KeyboardInterrupt:
            self.interrupted = True
            self.errors.append("interrupted (Ctrl-C)")
        except Exception as exc:  # noqa: BLE001 - recorded; the run dir must still be written
            self.errors.append(f"{type(exc).__name__}: {exc}")
            self.console.print(f"[red]run failed:[/] {type(exc).__name__}: {exc}")
        finally:
            self._teardown()
            if threading.current_thread() is threading.main_thread():
                for sig, handler in old_handlers.items():
                    signal.signal(sig, handler)
        return self._check()

    def _on_sigint(self, _sig: int, _frame: Any) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.interrupted = True
        self.console.print(
            f"[yellow]{signal.Signals(_sig).name}: stopping load, healing faults, "
            "collecting what was recorded (Ctrl-C again to abort harder)[/]"
        )
        self.stop.set()

    def _load_phase(self) -> None:
        cfg, system = self.cfg, self.system
        from squall.nemesis.registry import check_supported
        from squall.nemesis.schedule import load_schedule

        schedule = load_schedule(cfg)
        workload = workload_for(cfg, system)
        check_client(workload, system)
        self.cluster = make_cluster(
            cfg, system, self.run_dir, lambda msg: self.console.print(f"  {msg}")
        )
        # Every fault asked for, drawn into the timeline or not: a run that cannot
        # take one is refused whether or not the seed happened to draw it.
        check_supported(dict.fromkeys([*cfg.nemesis, *schedule.fault_names()]), self.cluster)
        schedule.prepare(self.cluster)
        self.console.print(
            f"starting {cfg.nodes} {system.name} nodes on the {cfg.backend} backend …"
        )
        t0 = time.monotonic()
        self.cluster.up()
        self.history = HistoryWriter(self.run_dir / "history.jsonl")
        workload.setup(self._client(0))
        self.nemesis = NemesisRunner(
            self.cluster, schedule, self.history.record, rng=random.Random(f"{cfg.seed}:nemesis")
        )
        workers = [
            threading.Thread(
                target=self._worker, args=(w, workload), daemon=True, name=f"worker-{w}"
            )
            for w in range(cfg.concurrency)
        ]
        self.console.print(
            f"cluster up in {time.monotonic() - t0:.1f}s; load for {cfg.time_limit:g}s"
        )
        start = time.monotonic()
        self.sampler = StatusSampler(
            self.cluster.nodes, self._observe, self.run_dir / SAMPLES_FILE, self.history.now
        )
        self.sampler.start()
        self.nemesis.start()
        for t in workers:
            t.start()
        with RunProgress(self.console, cfg.time_limit, self.counters, self.nemesis) as progress:
            while not self.stop.wait(0.25):
                progress.update()
                if time.monotonic() - start >= cfg.time_limit:
                    break
        self.stop.set()
        for t in workers:
            t.join(timeout=10)
        self.nemesis.stop()
        self.console.print("healing every fault and waiting for a healthy cluster …")
        self.nemesis.final_heal()
        self._final_ops(workload)

    def _observe(self, node: str) -> dict[str, Any] | None:
        assert self.cluster is not None
        seen = self.cluster.observe(node, 0.5)
        return seen.to_json() if seen is not None else None

    def _client(self, worker: int) -> object:
        cluster = self.cluster
        assert cluster is not None
        addresses = {n: cluster.address(n) for n in cluster.nodes}
        return self.system.client(lambda: addresses, worker, self.cfg.workload_options)

    def _worker(self, w: int, workload: Workload) -> None:
        assert self.history is not None
        rng = random.Random(f"{self.cfg.seed}:worker:{w}")
        client = self._client(w)
        process, n = w, 0
        while not self.stop.is_set():
            pause = workload.stagger(rng, self.cfg.rate)
            if pause and self.stop.wait(pause):
                break
            inv = workload.next_op(w, n, rng)
            n += 1
            if inv is None:
                continue
            process = self._invoke(client, workload, process, inv.f, inv.value)

    def _invoke(self, client: object, workload: Workload, process: int, f: str, value: Any) -> int:
        """Records invoke + completion; returns the process id for the next op."""
        assert self.history is not None
        self.history.record(Op(process=process, type=INVOKE, f=f, value=value))
        rid = None
        try:
            res = workload.invoke(client, Invocation(f, value))
            kind, result, error, node = res.type, res.value, res.error, res.node
            rid = getattr(res, "request_id", None)
        except Exception as exc:  # noqa: BLE001 - a client bug is indeterminate, not a crash
            kind, result, error, node = INFO, value, f"client error: {exc}", None
        self.history.record(
            Op(
                process=process,
                type=kind,
                f=f,
                value=result if kind != FAIL else value,
                node=node,
                error=error,
                extra={"request_id": rid} if rid else {},
            )
        )
        self.counters.add(kind)
        # A process whose op is indeterminate may still be "running" it: never reuse it.
        return process + self.cfg.concurrency if kind == INFO else process

    def _final_ops(self, workload: Workload) -> None:
        finals = workload.final_ops()
        if not finals or self.history is None:
            return
        client = self._client(0)
        process = 10_000 + self.cfg.concurrency
        for inv in finals:
            for _attempt in range(20):  # the cluster just healed: retry definite failures
                before = self.counters.fail
                process = self._invoke(client, workload, process, inv.f, inv.value)
                if self.counters.fail == before:
                    break
                time.sleep(0.25)

    # -- teardown, collection, checking ---------------------------------
    def _teardown(self) -> None:
        self.stop.set()
        if self.sampler is not None:
            self.sampler.stop()
        if self.nemesis is not None:
            try:
                self.nemesis.stop()
                self.nemesis.final_heal()
            except Exception as exc:  # noqa: BLE001
                self.errors.append(f"final heal failed: {exc}")
            try:
                (self.run_dir / "nemesis-timeline.yaml").write_text(self.nemesis.executed_yaml())
            except Exception as exc:  # noqa: BLE001
                self.errors.append(f"could not store the nemesis timeline: {exc}")
        if self.cluster is not None:
            try:
                collect(self.system, self.cluster, self.run_dir / "nodes", self._restarts())
            except Exception as exc:  # noqa: BLE001
                self.errors.append(f"collecting node state failed: {exc}")
            try:
                self.cluster.down()
            except Exception as exc:  # noqa: BLE001
                self.errors.append(f"teardown failed: {exc}")
        if self.nemesis is not None:
            try:
                self.nemesis.close()  # what outlives the cluster: the Toxiproxy server
            except Exception as exc:  # noqa: BLE001
                self.errors.append(f"closing the nemesis failed: {exc}")
        if self.history is not None:
            self.history.close()

    def _restarts(self) -> dict[str, int]:
        """How often each node was killed (and so restarted) by the nemesis."""
        counts: dict[str, int] = {}
        for op in self.history.ops if self.history is not None else []:
            if op.is_nemesis and op.f == "start-kill" and op.type != INVOKE:
                targets = op.value.get("targets", []) if isinstance(op.value, dict) else op.value
                for node in targets or []:
                    counts[str(node)] = counts.get(str(node), 0) + 1
        return counts

    def _check(self) -> int:
        return check_run_dir(
            self.run_dir,
            self.console,
            errors=self.errors,
            interrupted=self.interrupted,
            extra=self.cfg.checkers,
        )


def collect(system: System, cluster: Cluster, dest: Path, restarts: dict[str, int]) -> None:
    """What the system gathers after the final heal; for a system that says nothing
    particular, every node's log and data and what it said about itself last."""
    gather = getattr(system, "collect", None)
    if gather is not None:
        gather(cluster, dest, restarts)
        return
    dest.mkdir(parents=True, exist_ok=True)
    cluster.collect(dest, data=True)
    for node in cluster.nodes:
        seen = cluster.observe(node, 2.0)
        info = {"status": seen.to_json() if seen else None, "restarts": restarts.get(node, 0)}
        (dest / node).mkdir(parents=True, exist_ok=True)
        (dest / node / "final.json").write_text(json.dumps(info, indent=1, default=str))


def check_run_dir(
    run_dir: Path,
    console: Console,
    errors: list[str] | None = None,
    interrupted: bool = False,
    extra: dict[str, Checker] | None = None,
    write: bool = True,
    skip_damaged: bool = False,
) -> int:
    """Checks a run directory's history (fresh run or re-analysis); writes its results
    (results.json, results.xml, report.html) unless ``write`` is False, when they are
    printed as JSON on stdout instead and the run directory is left as it was."""
    raw = verdict.read_test_yaml(run_dir)
    # Only what names the checkers is read back: a stored run is judged as it was
    # recorded, whatever else its test.yaml says (older runs have no system: the store).
    where = str(run_dir / "test.yaml")
    cfg = Test(
        system=str(raw.get("system") or "aurora"),
        workload=str(raw.get("workload", "register")),
        concurrency=coerce("concurrency", raw.get("concurrency", 1), where),
        workload_options=coerce("workload_options", raw.get("workload_options") or {}, where),
    )
    system = cfg.system_object()
    hist_path = run_dir / "history.jsonl"
    read = load_history(hist_path, skip_damaged) if hist_path.exists() else HistoryRead(ops=[])
    history = read.ops
    nodes = load_node_info(run_dir / "nodes")
    workload = workload_for(cfg, system)
    test = {
        **raw,
        # the values the checkers are built with, checked as a run's would be
        **{k: coerce(k, raw[k], where) for k in verdict.CHECKER_OPTIONS if k in raw},
        "system": system_name(cfg.system),
        "write_fs": list(workload.write_fs),
        "read_fs": list(workload.read_fs),
    }
    resolution = log_resolution(system, nodes, run_dir if write else None)
    ctx = CheckContext(  # no run_dir when nothing may be written: checkers draw no plots
        history=history,
        test=test,
        run_dir=run_dir if write else None,
        nodes=nodes,
        samples=read_samples(run_dir),
        resolution=resolution,
    )
    checker = compose({**all_checkers(workload, system, test), **(extra or {})})
    console.print(f"checking {len(history)} ops …")
    for note in read.notes():
        console.print(f"[yellow]{note}[/]")
    results = checker(ctx)
    errors = list(errors or [])
    if errors:
        results["run_errors"] = errors
    if interrupted:
        results["interrupted"] = True
    verdict.note_conditions(results, verdict.conditions(raw, read, interrupted), read)
    if not history:
        results["valid"] = "unknown"
    if write:
        _write_results(run_dir, results, history, test, console)
    else:
        print(json.dumps(results, default=str))
    verdict_ = results["valid"]
    colour = {True: "green", False: "red"}.get(verdict_, "yellow")
    where_ = run_dir / "report.html" if write else "(nothing written: --write to keep it)"
    console.print(f"[bold {colour}]valid: {json.dumps(verdict_)}[/]  {where_}")
    if errors and not history:
        return EXIT_RUN_FAILED
    return EXIT.get(verdict_, 2)


def _write_results(
    run_dir: Path,
    results: dict[str, Any],
    history: list[Op],
    test: dict[str, Any],
    console: Console,
) -> None:
    from squall.report.junit import write_junit
    from squall.report.linear_html import write_for_run
    from squall.report.timeline_html import write_timeline

    write_for_run(run_dir, results, history)
    try:
        write_timeline(run_dir, history, test, results)
    except Exception as exc:  # noqa: BLE001 - a broken page must not hide the verdict
        console.print(f"[yellow]timeline.html not written: {exc}[/]")
    store.write_json(run_dir / "results.json", results)
    write_junit(results, run_dir / "results.xml")
    try:
        from squall.report.run_page import write_report

        write_report(run_dir)
    except Exception as exc:  # noqa: BLE001 - a broken report must not hide the verdict
        console.print(f"[yellow]report not written: {exc}[/]")


def all_checkers(workload: Workload, system: System, test: dict[str, Any]) -> dict[str, Checker]:
    """The generic checkers, the workload's, and the ones the system says its runs need."""
    from squall.checkers.failover import check_failover
    from squall.checkers.perf import check_perf
    from squall.checkers.stats import check_stats

    checks: dict[str, Checker] = {"stats": check_stats}
    checks.update(workload.checkers(float(test.get("check_time_limit", 60))))
    own = getattr(system, "checkers", None)
    if own is not None:
        checks.update(own(test))
    checks["failover"] = check_failover
    checks["perf"] = check_perf
    return checks


def log_resolution(
    system: System, nodes: dict[str, dict[str, Any]], run_dir: Path | None
) -> dict[str, Any] | None:
    """What the system's log says of its clients' request ids (System.committed),
    worked out from what was collected, so a re-check of a stored run finds the
    same; written to resolution.json beside the history, which stays as recorded."""
    hook = getattr(system, "committed", None)
    if hook is None or not nodes:
        return None
    try:
        found = hook(nodes)
    except Exception as exc:  # noqa: BLE001 - no resolution is the safe answer
        found = {"source": None, "complete": False, "committed": {}, "why": f"{exc}"}
    resolution = dict(found) if found else None
    if resolution is not None and run_dir is not None:
        (run_dir / "resolution.json").write_text(json.dumps(resolution, indent=1, default=str))
    return resolution


def load_node_info(nodes_dir: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if not nodes_dir.is_dir():
        return out
    for f in sorted(nodes_dir.glob("*/final.json")):
        try:
            out[f.parent.name] = json.loads(f.read_text())
        except ValueError:
            continue
    return out


def replay_command(cfg: Test) -> str:
    argv = [
        "squall",
        "run",
        "--system",
        system_name(cfg.system),
        "--workload",
        str(cfg.to_dict()["workload"]),
        "--nodes",
        str(cfg.nodes),
        "--time-limit",
        f"{cfg.time_limit:g}",
        "--concurrency",
        str(cfg.concurrency),
        "--rate",
        f"{cfg.rate:g}",
        "--seed",
        str(cfg.seed),
        "--backend",
        cfg.backend,
    ]
    if cfg.inventory:
        argv += ["--inventory", cfg.inventory]
    if cfg.nemesis_file:
        argv += ["--nemesis", cfg.nemesis_file]
    elif cfg.nemesis:
        argv += ["--nemesis", ",".join(cfg.nemesis)]
    for bug in cfg.bugs:
        argv += ["--bug", bug]
    defaults = getattr(cfg.system_object(), "options", {})
    for key, value in sorted(cfg.system_options.items()):
        if defaults.get(key) != value:  # the system's defaults need no saying
            argv += ["-o", f"{key}={json.dumps(value)}"]
    return shlex.join(argv)


def run(cfg: Test, console: Console | None = None) -> int:
    """Runs a test and checks it: 0 valid, 1 invalid, 2 unknown, 3 the run itself failed."""
    try:
        return Run(cfg, console).execute()
    except RunFailed as exc:
        (console or Console(stderr=True)).print(f"[red]{exc}[/]")
        return EXIT_RUN_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(Test()))
