"""Runs a schedule against a live cluster on its own thread, recording every step.

Each step is two history ops: the invoke (``process: "nemesis"``,
``f: start-<fault>`` with the event's options as value) recorded before the
fault is touched, and the completion the fault returns (with ``targets``,
``leader`` and the fault's keys), recorded when it took effect. The report
shades the time between a start's completion and its stop's completion.

``final_heal`` closes every window still open (recording the stop ops, so
no fault looks active forever), tears every fault down, and waits for the
cluster to be healthy: it runs on success, on failure and after Ctrl-C.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from squall.cluster.base import Cluster, ClusterError
from squall.history import INFO, INVOKE, NEMESIS, Op
from squall.nemesis.base import Fault, NemesisError, completion
from squall.nemesis.registry import build
from squall.nemesis.schedule import Event, Schedule

Record = Callable[[Op], Op]


class NemesisRunner:
    def __init__(
        self,
        cluster: Cluster,
        schedule: Schedule,
        record: Record,
        rng: random.Random | None = None,
        faults: dict[str, Fault] | None = None,
    ) -> None:
        self.cluster = cluster
        self.schedule = schedule
        self.record = record
        self.faults = faults or schedule.prepared or build(schedule.fault_names(), cluster.supports)
        missing = set(schedule.fault_names()) - set(self.faults)
        if missing:
            raise NemesisError(f"the schedule uses {sorted(missing)} but no fault was built for it")
        base = rng or random.Random(f"nemesis:{schedule.seed}")
        # Each fault gets its own stream, drawn in a fixed order, so adding a
        # fault to a run does not change the choices another fault makes.
        for kind in sorted(self.faults):
            self.faults[kind].setup(cluster, random.Random(base.randrange(2**63)))
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._open: dict[str, tuple[int, float, dict[str, Any]]] = {}  # kind -> (event, t, pinned)
        self._executed: list[Event] = []

    # -- the thread -------------------------------------------------------
    def start(self) -> None:
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="nemesis", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for step in self.schedule.steps():
            if self._halt.wait(max(0.0, self._t0 + step.at - time.monotonic())):
                return
            event = self.schedule.events[step.event]
            if step.action == "start":
                self._start(step.event, event)
            else:
                self._stop(event.fault)

    def stop(self, timeout: float = 120.0) -> None:
        """Stops scheduling new steps; waits for a step in flight to finish."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Waits for the whole schedule to have run; True if it did."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- steps --------------------------------------------------------------
    def _start(self, index: int, event: Event) -> Op:
        fault = self.faults[event.fault]
        params = dict(event.params)
        if "seconds" in fault.options and event.duration is not None:
            params.setdefault("seconds", event.duration)
        with self._lock:
            # The executed timeline keeps invoke times, so a replay invokes
            # each step when this run did.
            at = time.monotonic() - self._t0
            inv = self.record(
                Op(process=NEMESIS, type=INVOKE, f=f"start-{event.fault}", value=params)
            )
            done = self.record(self._invoke(fault, inv))
            self._open[event.fault] = (index, at, fault.pinned(params, done.value or {}))
        return done

    def _stop(self, kind: str) -> Op | None:
        with self._lock:
            if kind not in self._open:
                return None
            index, at, pinned = self._open.pop(kind)
            fault = self.faults[kind]
            end = time.monotonic() - self._t0
            inv = self.record(Op(process=NEMESIS, type=INVOKE, f=f"stop-{kind}", value={}))
            done = self.record(self._invoke(fault, inv))
            self._executed.append(Event(round(at, 3), kind, round(end - at, 3), pinned))
        return done

    @staticmethod
    def _invoke(fault: Fault, inv: Op) -> Op:
        try:
            return fault.invoke(inv)
        except Exception as exc:  # noqa: BLE001 - a broken fault must not kill the run
            return completion(
                inv, INFO, {"targets": [], "leader": None}, error=f"{type(exc).__name__}: {exc}"
            )

    # -- state ----------------------------------------------------------------
    def active(self) -> list[str]:
        return sorted(self._open)

    def executed(self) -> Schedule:
        """The timeline as it ran, choices pinned: replaying it repeats these faults."""
        with self._lock:
            events = list(self._executed)
            events += [
                Event(round(at, 3), kind, None, pinned)
                for kind, (_i, at, pinned) in self._open.items()
            ]
        return Schedule(tuple(sorted(events, key=lambda e: e.at)), self.schedule.seed)

    def executed_yaml(self) -> str:
        return self.executed().to_yaml()

    # -- the end ---------------------------------------------------------------
    def final_heal(self, timeout: float = 60.0) -> None:
        """Heals everything, records the stops, and waits for a healthy cluster."""
        self.stop()
        for kind in list(self._open):
            self._stop(kind)
        errors = []
        for kind, fault in self.faults.items():
            try:
                fault.teardown()
            except Exception as exc:  # noqa: BLE001 - heal the rest, then report
                errors.append(f"{kind}: {type(exc).__name__}: {exc}")
        try:
            self.cluster.wait_healthy(timeout)
        except ClusterError as exc:
            errors.append(str(exc))
        if errors:
            raise NemesisError("final heal incomplete: " + "; ".join(errors))

    def close(self) -> None:
        """Releases what outlives the cluster (the Toxiproxy server); after ``down``."""
        for fault in self.faults.values():
            closer = getattr(fault, "close", None)
            if closer is not None:
                closer()
