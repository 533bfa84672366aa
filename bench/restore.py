"""Snapshot and restore time of the ``rows`` codec (Aurora's old way) against ``dump``.

    python bench/restore.py [--instances 4000] [--batch 1000] [--rounds 6] [--repeat 3]

Builds a store the way a follower would, by applying log entries to a real
SQLite file: one job, then ``rounds`` job updates of ``instances`` instances
(each replacing the previous one's tasks) whose tasks are driven PENDING →
ASSIGNED → STARTING → RUNNING by status updates; the last update is left half
done, still rolling forward. With the defaults that is 4,000 instances and
over 100,000 task events. Then, per codec: snapshot size, snapshot time
(encode), restore time (the codec builds the database file and it is opened),
the median of ``repeat`` runs; both restores must give the live digest.
Goal: ``dump`` restores at least 5x faster than ``rows``. The last line is one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import squall.systems.aurora.store.scheduler  # noqa: F401 - registers the scheduler domain and the rows codec
from squall.systems.aurora.store import codecs
from squall.systems.aurora.store.statemachine import StateMachine, applied_of, connect, digest_of
from squall.systems.aurora.store.wal import Entry

STEPS = (("PENDING", "ASSIGNED"), ("ASSIGNED", "STARTING"), ("STARTING", "RUNNING"))
JOB = "bench/prod/storm"


class Builder:
    def __init__(self, sm: StateMachine) -> None:
        self.sm = sm

    def apply(self, commands: list[dict[str, Any]]) -> None:
        base = self.sm.applied_index
        ts = int(time.time() * 1000)  # as the leader would stamp them
        entries = [Entry(base + i, 1, {**c, "ts": ts}) for i, c in enumerate(commands, 1)]
        for _e, result in self.sm.apply(entries):
            if isinstance(result, dict) and "error" in result:
                raise RuntimeError(f"building the store: {result}")


def build(sm: StateMachine, instances: int, batch: int, rounds: int) -> dict[str, int]:
    b = Builder(sm)
    b.apply(
        [
            {
                "op": "sched.CreateJob",
                "job": {
                    "role": "bench",
                    "env": "prod",
                    "name": "storm",
                    "instances": 0,
                    "task_config": {"cmd": "serve", "cpu": 0.5, "ram_mb": 256},
                },
            },
            {
                "op": "sched.SaveQuota",
                "role": "bench",
                "quota": {"cpu": 4000.0, "ram_mb": 1 << 20, "disk_mb": 0},
            },
        ]
    )
    for r in range(rounds):
        uid = f"u{r}"
        b.apply(
            [
                {
                    "op": "sched.StartJobUpdate",
                    "job": JOB,
                    "update_id": uid,
                    "instances": instances,
                    "batch_size": batch,
                }
            ]
        )
        assert sm.conn is not None
        tasks = [
            t
            for (t,) in sm.conn.execute(
                "SELECT task_id FROM sched_tasks WHERE update_id = ? ORDER BY instance", (uid,)
            )
        ]
        if r == rounds - 1:
            tasks = tasks[: len(tasks) // 2]  # the last update is still rolling forward
        for frm, to in STEPS:
            b.apply(
                [{"op": "sched.ChangeState", "task_id": t, "from": frm, "to": to} for t in tasks]
            )
        print(f"  update {uid}: {len(tasks)} tasks driven to RUNNING", file=sys.stderr)
    assert sm.conn is not None
    count = {
        name: int(sm.conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0])  # noqa: S608
        for name in ("sched_tasks", "sched_task_events", "sched_instance_events", "sched_updates")
    }
    return {"entries": sm.applied_index, **count}


def measure(sm: StateMachine, codec_name: str, repeat: int, scratch: Path) -> dict[str, Any]:
    assert sm.conn is not None
    codec = codecs.get(codec_name)
    live = digest_of(sm.conn)
    enc, res = [], []
    data = b""
    for k in range(repeat):
        t0 = time.perf_counter()
        data = codec.encode(sm.conn)
        enc.append(time.perf_counter() - t0)
        path = scratch / f"{codec_name}-{k}.db"
        t0 = time.perf_counter()
        codec.restore(data, path)
        conn = connect(path)
        applied = applied_of(conn)
        res.append(time.perf_counter() - t0)
        if applied[0] != sm.applied_index or digest_of(conn) != live:
            raise SystemExit(f"{codec_name}: the restored state differs from the live one (a bug)")
        conn.close()
    return {
        "bytes": len(data),
        "snapshot_ms": round(statistics.median(enc) * 1000, 1),
        "restore_ms": round(statistics.median(res) * 1000, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--instances", type=int, default=4000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="squall-bench-restore-") as tmp:
        root = Path(tmp)
        (root / "live").mkdir()
        sm = StateMachine(root / "live", digest_every=0)
        sm.open_empty()
        t0 = time.perf_counter()
        size = build(sm, a.instances, a.batch, a.rounds)
        print(
            f"built the store in {time.perf_counter() - t0:.1f}s: {size['entries']} log entries, "
            f"{size['sched_tasks']} tasks, {size['sched_task_events']} task events, "
            f"{size['sched_instance_events']} instance events"
        )
        out: dict[str, Any] = {"bench": "restore", **size}
        for name in ("rows", "dump"):
            out[name] = m = measure(sm, name, a.repeat, root)
            print(
                f"{name:>5}: snapshot {m['bytes'] / 1e6:6.2f} MB in {m['snapshot_ms']:7.1f} ms, "
                f"restore {m['restore_ms']:8.1f} ms"
            )
        sm.close()
    ratio = out["rows"]["restore_ms"] / max(out["dump"]["restore_ms"], 0.001)
    out["restore_ratio"] = round(ratio, 1)
    out["goal_met"] = ratio >= 5
    print(
        f"dump restores {ratio:.1f}x faster than rows (goal: at least 5x) -> "
        f"{'met' if out['goal_met'] else 'NOT met'}"
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
