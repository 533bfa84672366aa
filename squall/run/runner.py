"""One run, start to verdict: cluster up, load + faults, heal, final reads,
collect, check, report.

Data flows one way: the runner builds the cluster, hands clients to the
workload's workers and the cluster to the nemesis, records one history, and
passes it (with what it collected from the nodes) to the checkers. Whatever
goes wrong — a failed setup, Ctrl-C, a crash of a worker — the same ``finally``
heals, collects logs and tears the cluster down, and the history recorded so
far is checked: a run directory always holds what was recorded.
"""

from __future__ import annotations

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

from squall.checkers.base import CheckContext, compose
from squall.cluster.base import Cluster, ClusterSpec
from squall.history import FAIL, INFO, INVOKE, HistoryWriter, Op, read_history
from squall.run import rundir as store
from squall.run.config import RunConfig, dump_yaml
from squall.run.progress import RunProgress
from squall.run.sampler import SAMPLES_FILE, StatusSampler, read_samples
from squall.systems.aurora.client import StoreClient
from squall.systems.aurora.collect import collect_nodes
from squall.workloads import Workload, get_workload

EXIT = {True: 0, False: 1, "unknown": 2}
EXIT_RUN_FAILED = 3
# What the status sampler keeps of each answer: enough to say what a node was doing.
SAMPLED = ("role", "term", "leader", "commit_index", "applied_index", "snapshot_in_progress",
           "sending_snapshot")


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


def make_cluster(cfg: RunConfig, run_dir: Path, extra: dict[str, Any] | None = None) -> Cluster:
    spec = ClusterSpec(
        name=_run_id(run_dir),
        nodes=cfg.nodes, snapshot_every=cfg.snapshot_every, snapshot_codec=cfg.snapshot_codec,
        bugs=tuple(cfg.bugs), bug_nodes=tuple(cfg.bug_nodes), data_root=run_dir / "nodes-data",
        extra=dict(extra or {}),
    )
    if cfg.backend == "docker":
        from squall.cluster.docker import DockerCluster

        return DockerCluster(spec)
    from squall.cluster.local import LocalCluster

    return LocalCluster(spec)


def _run_id(run_dir: Path) -> str:
    import hashlib

    return "r" + hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:8]


class Run:
    """Holds one run's moving parts so teardown can reach all of them."""

    def __init__(self, cfg: RunConfig, console: Console | None = None) -> None:
        self.cfg = cfg.resolved()
        self.console = console or Console(stderr=True)
        self.stop = threading.Event()
        self.counters = Counters()
        self.cluster: Cluster | None = None
        self.history: HistoryWriter | None = None
        self.nemesis: Any = None
        self.sampler: StatusSampler | None = None
        self.errors: list[str] = []
        self.interrupted = False
        self.run_dir = store.new_run_dir(self.cfg.store, self.cfg.name or "run")

    # -- the whole run ---------------------------------------------------
    def execute(self) -> int:
        cfg = self.cfg
        self.console.print(f"[bold]squall[/] {cfg.name}  seed [bold]{cfg.seed}[/]  → {self.run_dir}")
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
        self.console.print(f"[yellow]{signal.Signals(_sig).name}: stopping load, healing faults, "
                           "collecting what was recorded (Ctrl-C again to abort harder)[/]")
        self.stop.set()

    def _load_phase(self) -> None:
        cfg = self.cfg
        from squall.nemesis.registry import check_supported
        from squall.nemesis.schedule import load_schedule

        schedule = load_schedule(cfg, self.run_dir)
        workload = get_workload(cfg.workload, cfg.concurrency, cfg.workload_options)
        self.cluster = make_cluster(cfg, self.run_dir, schedule.cluster_extra(cfg))
        check_supported(schedule.fault_names(), type(self.cluster))
        self.console.print(f"starting {cfg.nodes} nodes on the {cfg.backend} backend …")
        t0 = time.monotonic()
        if cfg.backend == "docker":
            from squall.cluster.image import ensure_image

            ensure_image(lambda msg: self.console.print(f"  image: {msg}"))
        self.cluster.up()
        self.history = HistoryWriter(self.run_dir / "history.jsonl")
        workload.setup(self._client(0))
        from squall.nemesis.runner import NemesisRunner

        self.nemesis = NemesisRunner(self.cluster, schedule, self.history.record,
                                     rng=random.Random(f"{cfg.seed}:nemesis"))
        workers = [threading.Thread(target=self._worker, args=(w, workload), daemon=True,
                                    name=f"worker-{w}") for w in range(cfg.concurrency)]
        self.console.print(f"cluster up in {time.monotonic() - t0:.1f}s; load for {cfg.time_limit:g}s")
        start = time.monotonic()
        self.sampler = StatusSampler(self.cluster.nodes, self._observe, self.run_dir / SAMPLES_FILE,
                                     self.history.now)
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
        status = self.cluster.status(node, 0.5)
        return {k: status.get(k) for k in SAMPLED} if status else None

    def _client(self, worker: int) -> StoreClient:
        cluster = self.cluster
        assert cluster is not None
        urls = {n: cluster.client_url(n) for n in cluster.nodes}
        return StoreClient(lambda: urls, timeout=float(self.cfg.workload_options.get("timeout", 1.0)),
                           first=worker)

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

    def _invoke(self, client: StoreClient, workload: Workload, process: int, f: str,
                value: Any) -> int:
        """Records invoke + completion; returns the process id for the next op."""
        from squall.workloads.base import Invocation

        assert self.history is not None
        self.history.record(Op(process=process, type=INVOKE, f=f, value=value))
        try:
            out, result = workload.invoke(client, Invocation(f, value))
            kind, error, node = out.type, out.error, out.node
        except Exception as exc:  # noqa: BLE001 - a client bug is indeterminate, not a crash
            kind, result, error, node = INFO, value, f"client error: {exc}", None
        self.history.record(Op(process=process, type=kind, f=f, value=result if kind != FAIL else value,
                               node=node, error=error))
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
                collect_nodes(self.cluster, self.run_dir / "nodes", self.console,
                              restarts=self._restarts())
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
        return check_run_dir(self.run_dir, self.console, errors=self.errors,
                             interrupted=self.interrupted)


def check_run_dir(run_dir: Path, console: Console, errors: list[str] | None = None,
                  interrupted: bool = False) -> int:
    """Checks a run directory's history (fresh run or re-analysis); writes results."""
    import yaml

    test = yaml.safe_load((run_dir / "test.yaml").read_text()) or {}
    hist_path = run_dir / "history.jsonl"
    history = read_history(hist_path) if hist_path.exists() else []
    nodes = load_node_info(run_dir / "nodes")
    workload = get_workload(test.get("workload", "register"), int(test.get("concurrency", 1)),
                            test.get("workload_options"))
    test = {**test, "write_fs": list(workload.write_fs), "read_fs": list(workload.read_fs)}
    ctx = CheckContext(history=history, test=test, run_dir=run_dir, nodes=nodes,
                       samples=read_samples(run_dir))
    checker = compose(all_checkers(workload, test))
    console.print(f"checking {len(history)} ops …")
    results = checker(ctx)
    errors = list(errors or [])
    if errors:
        results["run_errors"] = errors
    if interrupted:
        results["interrupted"] = True
    if not history:
        results["valid"] = "unknown"
    store.write_json(run_dir / "results.json", results)
    from squall.report.junit import write_junit

    write_junit(results, run_dir / "results.xml")
    try:
        from squall.report.run_page import write_report

        write_report(run_dir)
    except Exception as exc:  # noqa: BLE001 - a broken report must not hide the verdict
        console.print(f"[yellow]report not written: {exc}[/]")
    verdict = results["valid"]
    colour = {True: "green", False: "red"}.get(verdict, "yellow")
    console.print(f"[bold {colour}]valid: {json.dumps(verdict)}[/]  {run_dir / 'report.html'}")
    if errors and not history:
        return EXIT_RUN_FAILED
    return EXIT.get(verdict, 2)


def all_checkers(workload: Workload, test: dict[str, Any]) -> dict[str, Callable[..., Any]]:
    from squall.checkers.failover import check_failover
    from squall.checkers.perf import check_perf
    from squall.checkers.stats import check_stats
    from squall.systems.aurora.fidelity import check_fidelity

    checks: dict[str, Callable[..., Any]] = {"stats": check_stats}
    checks.update(workload.checkers(float(test.get("check_time_limit", 60))))
    checks["fidelity"] = check_fidelity
    checks["failover"] = check_failover
    checks["perf"] = check_perf
    return checks


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


def replay_command(cfg: RunConfig) -> str:
    argv = ["squall", "run", "--workload", cfg.workload, "--nodes", str(cfg.nodes),
            "--time-limit", f"{cfg.time_limit:g}", "--concurrency", str(cfg.concurrency),
            "--rate", f"{cfg.rate:g}", "--seed", str(cfg.seed), "--backend", cfg.backend]
    if cfg.nemesis_file:
        argv += ["--nemesis", cfg.nemesis_file]
    elif cfg.nemesis:
        argv += ["--nemesis", ",".join(cfg.nemesis)]
    for bug in cfg.bugs:
        argv += ["--bug", bug]
    if cfg.snapshot_codec != "dump":
        argv += ["--snapshot-codec", cfg.snapshot_codec]
    return shlex.join(argv)


def run(cfg: RunConfig, console: Console | None = None) -> int:
    try:
        return Run(cfg, console).execute()
    except RunFailed as exc:
        (console or Console(stderr=True)).print(f"[red]{exc}[/]")
        return EXIT_RUN_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(RunConfig()))
