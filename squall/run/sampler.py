"""What the nodes said about themselves during the run, sampled a few times a second.

A checker that finds a write waiting too long can say *that* it waited from
the history alone, but not *why*: whether the leader was electing,
snapshotting, sending a snapshot or falling behind on applying. The sampler
asks every node for its status (one thread per node, so a paused node holds
up only its own samples) and appends one JSON line per answer to
``status-samples.jsonl``, stamped with the history's clock, so checkers can
line the samples up with the ops. A node that does not answer is recorded as
``"status": null``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

SAMPLES_FILE = "status-samples.jsonl"
DEFAULT_EVERY_S = 0.25

Observe = Callable[[str], Mapping[str, Any] | None]


class StatusSampler:
    """Polls ``observe(node)`` for every node until stopped, writing each answer as it comes."""

    def __init__(
        self,
        nodes: list[str],
        observe: Observe,
        path: Path,
        now: Callable[[], int],
        every: float = DEFAULT_EVERY_S,
    ) -> None:
        self.nodes = list(nodes)
        self.observe = observe
        self.path = path
        self.now = now
        self.every = every
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._fh: IO[str] | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._fh = self.path.open("a", encoding="utf-8")
        for node in self.nodes:
            t = threading.Thread(
                target=self._poll, args=(node,), daemon=True, name=f"squall-sample-{node}"
            )
            t.start()
            self._threads.append(t)

    def _poll(self, node: str) -> None:
        while not self._halt.is_set():
            at = self.now()
            try:
                status = self.observe(node)
            except Exception:  # noqa: BLE001 - a sample that failed is a node that did not answer
                status = None
            self._write({"time": at, "node": node, "status": dict(status) if status else None})
            self._halt.wait(self.every)

    def _write(self, sample: dict[str, Any]) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.write(json.dumps(sample, separators=(",", ":"), default=str) + "\n")
                self._fh.flush()

    def stop(self) -> None:
        self._halt.set()
        for t in self._threads:
            t.join(5)
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


def read_samples(run_dir: Path | None) -> list[dict[str, Any]]:
    """The samples a run recorded, in time order; [] when there are none (older runs).

    A torn last line (the runner was killed mid-write) is skipped: samples
    only explain a verdict, they never decide one.
    """
    if run_dir is None or not (run_dir / SAMPLES_FILE).is_file():
        return []
    out = []
    for line in (run_dir / SAMPLES_FILE).read_text(errors="replace").splitlines():
        try:
            sample = json.loads(line)
        except ValueError:
            continue
        if isinstance(sample, dict) and isinstance(sample.get("time"), int):
            out.append(sample)
    return sorted(out, key=lambda s: s["time"])
