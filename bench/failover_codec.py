"""Cold-standby failover downtime with the ``rows`` and ``dump`` snapshot codecs (issue 15).

    python bench/failover_codec.py [--kills 10] [--nodes 3] [--tail 3000]
                                   [--instances 4000] [--batch 1000] [--rounds 6]

Aurora's standby schedulers kept no live state: the new leader rebuilt its
database from the newest snapshot plus the log tail before it served, so the
snapshot codec decided failover downtime there (the seed: dumps instead of
row-by-row snapshots cut it by about 40%, "depending on the snapshot
freshness"). This measures the same thing on this store in ``standby: cold``.

The seed's state is built once, offline, by applying log entries to a real
SQLite file (``bench/restore.py``'s builder: a 4,000-instance job update in
batches of 1,000, over 100,000 task events). Per codec, every node of a local
cluster (real node processes on loopback, real fsync and SQLite) starts from
a snapshot of that state in the codec, and a writer puts continuously to the
leader. Each round kills the leader with SIGKILL and measures the downtime
from the kill to the first write acknowledged by another node, for two
snapshot freshnesses:

* ``fresh``: the leader takes a snapshot, every follower has kept it, then the
  kill (the tail is the few writes made since);
* ``tail``: after the snapshot ``--tail`` more entries are written (kv puts of
  about 200 bytes), then the kill: the new leader replays them all.

The victim restarts and the cluster settles between rounds. Snapshots are
taken only when asked (``snapshot_every: 0``) so the tail is what the round
made it; apply digests are off (``digest_every: 0``) so a full-state digest
every 100 entries does not compete with the replay (the restore still
computes one, in both codecs). Each round also prints what the new leader
reported of its recovery (restore ms, tail entries, total ms): downtime is
election + restore + replay, and the figures say which part the codec moves.
Prints every round, the p50 and max per codec x freshness, the dump/rows
ratios measured in this one run, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from failover_local import Writer  # noqa: E402
from restore import build  # noqa: E402

from squall.cluster.base import ClusterSpec  # noqa: E402
from squall.cluster.local import LocalCluster  # noqa: E402
from squall.systems.aurora.store import codecs  # noqa: E402
from squall.systems.aurora.store.fsutil import write_atomic  # noqa: E402
from squall.systems.aurora.store.snapshots import SnapshotStore, make_meta  # noqa: E402
from squall.systems.aurora.store.statemachine import StateMachine  # noqa: E402
from squall.systems.aurora.store.wal import encode_record  # noqa: E402
from squall.systems.aurora.system import AuroraSystem, get_json  # noqa: E402
from squall.systems.aurora.system import url as node_url  # noqa: E402
from squall.util import WaitTimeout, wait_until  # noqa: E402

CODECS = ("rows", "dump")
FRESHNESS = ("fresh", "tail")


def seed_state(
    instances: int, batch: int, rounds: int, scratch: Path
) -> tuple[StateMachine, dict[str, int]]:
    (scratch / "seed").mkdir()
    sm = StateMachine(scratch / "seed", digest_every=0)
    sm.open_empty()
    t0 = time.perf_counter()
    size = build(sm, instances, batch, rounds)
    print(
        f"built the seed's state in {time.perf_counter() - t0:.1f}s: {size['entries']} entries, "
        f"{size['sched_tasks']} tasks, {size['sched_task_events']} task events",
        flush=True,
    )
    return sm, size


def preseed(cluster: LocalCluster, sm: StateMachine, codec: str) -> int:
    """Every node's data dir holds the state as a snapshot in ``codec`` and an empty log
    after it, as if the cluster had compacted there (term 1). Returns the snapshot's bytes."""
    assert sm.conn is not None
    payload = codecs.get(codec).encode(sm.conn)
    meta = make_meta(sm.applied_index, 1, codec, payload)
    for node in cluster.nodes:
        data = Path(cluster.data_dir(node))
        data.mkdir(parents=True, exist_ok=True)
        SnapshotStore(data / "snapshots").write(meta, payload)
        write_atomic(data / "raft.log", [encode_record({"base": meta.index, "term": 1})], True)
        write_atomic(
            data / "raft-meta.json", [json.dumps({"term": 1, "vote": None}).encode()], True
        )
    return meta.bytes


def status(cluster: LocalCluster, node: str) -> dict[str, Any]:
    got = get_json(cluster.address(node), "/status", 2.0)
    return got if isinstance(got, dict) else {}


def settle(cluster: LocalCluster, writer: Writer) -> str:
    leader = cluster.leader(60)
    if leader is None or writer.first_ack_after(time.monotonic(), 60) is None:
        raise SystemExit("the cluster did not settle (no leader, or no write acknowledged in 60 s)")
    return leader


def leads(cluster: LocalCluster, node: str, term: int) -> bool:
    s = status(cluster, node)
    return s.get("role") == "leader" and s.get("term") == term


def fresh_snapshot(cluster: LocalCluster, leader: str) -> int | None:
    """The leader snapshots now; its index once every follower has kept it, or None if
    the leadership moved meanwhile or a follower missed every offer (the round is redone:
    it must start from a snapshot every candidate holds, or it would measure a tail)."""
    term = status(cluster, leader).get("term")
    said = AuroraSystem().snapshot(cluster.address(leader), 120.0, cluster.spec.secret)
    if said.get("status") != 200 or "index" not in (said.get("result") or {}):
        raise SystemExit(f"the leader refused a snapshot: {said}")
    index = int(said["result"]["index"])

    def kept() -> bool:
        return all(
            ((status(cluster, n).get("last_snapshot") or {}).get("index") or 0) >= index
            for n in cluster.nodes
        )

    try:
        wait_until(kept, 60, f"every follower to keep the snapshot at {index}", every=0.1)
    except WaitTimeout as exc:
        print(f"  (redoing the round: {exc})", file=sys.stderr, flush=True)
        return None
    return index if isinstance(term, int) and leads(cluster, leader, term) else None


def write_tail(cluster: LocalCluster, leader: str, count: int, threads: int = 8) -> None:
    """``count`` acknowledged puts to the leader, from a few threads (the tail to replay)."""
    url = node_url(cluster, leader)
    value = "x" * 200

    def put(worker: int) -> None:
        http = requests.Session()
        for i in range(worker, count, threads):
            r = http.put(f"{url}/kv/tail{i % 64}", json={"value": value}, timeout=10)
            if r.status_code != 200:  # the leadership moved: the round is checked, and redone
                return

    pool = [threading.Thread(target=put, args=(w,)) for w in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def one_kill(cluster: LocalCluster, writer: Writer, freshness: str, tail: int) -> dict[str, Any]:
    for _ in range(5):
        leader = settle(cluster, writer)
        term = status(cluster, leader).get("term")
        if fresh_snapshot(cluster, leader) is None:
            continue
        if freshness == "tail":
            write_tail(cluster, leader, tail)
        if isinstance(term, int) and leads(cluster, leader, term):
            break
        print("  (redoing the round: the leadership moved before the kill)", file=sys.stderr)
    else:
        raise SystemExit("five tries in a row could not prepare a round; the cluster is unstable")
    t_kill = time.monotonic()
    cluster.kill(leader)
    ack = writer.first_ack_after(t_kill, timeout=120, not_from=leader)
    took = (ack - t_kill) if ack else float("inf")
    new = cluster.leader(30)
    last = ((status(cluster, new).get("standby") or {}).get("last") or {}) if new else {}
    cluster.start(leader)
    cluster.wait_healthy(120)
    return {
        "downtime_ms": round(took * 1000, 1),
        "restore_ms": last.get("restore_ms"),
        "tail_entries": last.get("tail_entries"),
        "recovery_ms": last.get("total_ms"),
    }


def run_codec(sm: StateMachine, codec: str, a: argparse.Namespace, root: Path) -> dict[str, Any]:
    spec = ClusterSpec(
        name=f"failover-codec-{codec}",
        nodes=a.nodes,
        data_root=root / codec,
        options={
            "snapshot_codec": codec,
            "standby": "cold",
            "snapshot_every": 0,
            "digest_every": 0,
        },
    )
    cluster = LocalCluster(spec, AuroraSystem())
    out: dict[str, Any] = {"snapshot_bytes": preseed(cluster, sm, codec)}
    try:
        # Not up(): its 30 s wait is too short for every node restoring a rows snapshot at once.
        for n in cluster.nodes:
            cluster.start(n)
        cluster.wait_healthy(180)
        writer = Writer(cluster)
        writer.start()
        for freshness in FRESHNESS:
            rounds = []
            for k in range(a.kills):
                r = one_kill(cluster, writer, freshness, a.tail)
                rounds.append(r)
                print(
                    f"{codec:>4} {freshness:>5} kill {k + 1:2d}: down {r['downtime_ms']:8.1f} ms "
                    f"(restore {r['restore_ms']} ms, tail {r['tail_entries']} entries, "
                    f"recovery {r['recovery_ms']} ms)",
                    flush=True,
                )
            down = [r["downtime_ms"] for r in rounds]
            out[freshness] = {
                "p50_ms": round(statistics.median(down), 1),
                "max_ms": max(down),
                "restore_p50_ms": _median(r["restore_ms"] for r in rounds),
                "recovery_p50_ms": _median(r["recovery_ms"] for r in rounds),
                "tail_p50": _median(r["tail_entries"] for r in rounds),
                "samples_ms": down,
            }
        writer.stop.set()
        writer.join(5)
    finally:
        cluster.down()
    return out


def _median(values: Any) -> float | None:
    got = [v for v in values if isinstance(v, int | float)]
    return round(statistics.median(got), 1) if got else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=10, help="leader kills per codec and freshness")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--tail", type=int, default=3000, help="entries written after the snapshot")
    p.add_argument("--instances", type=int, default=4000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=6)
    a = p.parse_args()
    # SIGTERM (a timeout, a CI job cancelled) unwinds like Ctrl-C: every node is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if a.kills < 1 or a.nodes < 3 or a.tail < 0:
        print("failover_codec: --kills >= 1, --nodes >= 3 and --tail >= 0, please", file=sys.stderr)
        return 3
    with tempfile.TemporaryDirectory(prefix="squall-bench-failover-codec-") as tmp:
        root = Path(tmp)
        sm, size = seed_state(a.instances, a.batch, a.rounds, root)
        result: dict[str, Any] = {"bench": "failover_codec", "backend": "local", "nodes": a.nodes}
        result.update(size=size, kills=a.kills, tail=a.tail)
        for codec in CODECS:
            result[codec] = run_codec(sm, codec, a, root)
        sm.close()
    print()
    for freshness in FRESHNESS:
        rows, dump = result["rows"][freshness], result["dump"][freshness]
        cut = 1 - dump["p50_ms"] / rows["p50_ms"]
        result[f"{freshness}_p50_cut"] = round(cut, 3)
        print(
            f"{freshness:>5}: rows p50 {rows['p50_ms']:.0f} ms max {rows['max_ms']:.0f} ms | "
            f"dump p50 {dump['p50_ms']:.0f} ms max {dump['max_ms']:.0f} ms | "
            f"dump cuts the p50 downtime by {cut * 100:.0f}% (the seed: about 40%)"
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
