"""Restart and restore: snapshots round-trip the state, damage is refused, crashes are survived."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from squall.cluster.local import LocalCluster
from tests.aurora import get, peer_post, status
from tests.store.conftest import MakeCluster
from tests.store.helpers import Client, wait_for


def history(cluster: LocalCluster, node: str) -> list[dict[str, Any]]:
    return get(cluster, node, "/digest/history") or []


def event(cluster: LocalCluster, node: str, kind: str, index: int) -> dict[str, Any] | None:
    return next(
        (h for h in history(cluster, node) if h["event"] == kind and h["index"] == index), None
    )


def snapshot_then_restart(cluster: LocalCluster) -> tuple[dict[str, Any], dict[str, Any]]:
    """Writes, snapshots, writes more, kills and restarts n1: (snapshot event, restore event)."""
    client = Client(cluster)
    for i in range(30):
        client.put(f"k{i % 4}", i)
    snap = client.call("POST", "/admin/snapshot").json()
    for i in range(5):
        client.put(f"k{i}", "after")
    taken = event(cluster, "n1", "snapshot", snap["index"])
    assert taken, f"no snapshot digest recorded at {snap['index']}"
    cluster.kill("n1")
    cluster.start("n1")
    restored = wait_for(
        "a restore event after restart", lambda: event(cluster, "n1", "restore", snap["index"])
    )
    return taken, restored


def test_a_dump_restore_gives_the_digest_the_state_had_when_the_snapshot_was_taken(
    make_cluster: MakeCluster,
) -> None:
    taken, restored = snapshot_then_restart(make_cluster(1, snapshot_every=0))
    assert restored["digest"] == taken["digest"]


def test_the_offline_digest_tool_matches_the_running_node(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(1, snapshot_every=20)
    client = Client(cluster)
    for i in range(50):
        client.call("PUT", f"/kv/k{i % 6}", {"value": i, "request_id": f"r{i}"})
    refused = client.call("POST", "/kv/k0/cas", {"from": -1, "to": 9, "request_id": "cas"})
    assert refused.status_code == 409, refused.text
    live = get(cluster, "n1", "/digest")
    hint = Path(cluster.data_dir("n1")) / "commit-hint.json"
    wait_for(
        "the commit hint to reach the applied index",
        lambda: hint.exists() and json.loads(hint.read_text())["index"] == live["index"],
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "squall.systems.aurora.store.tools",
            "digest",
            str(Path(cluster.data_dir("n1"))),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    got = json.loads(out.stdout)
    assert {k: got[k] for k in ("index", "digest")} == live
    # Every request id applied, with its log index while the log still holds it
    # (snapshots every 20 entries took the older ones'), and whether it took effect.
    requests = {rid: (index, took) for rid, index, took in got["requests"]}
    assert set(requests) == {f"r{i}" for i in range(50)} | {"cas"}
    assert requests["cas"] == (live["index"], False)
    assert requests["r49"] == (live["index"] - 1, True)
    assert requests["r0"] == (None, True)


def stopped_node_with_state(make_cluster: MakeCluster) -> LocalCluster:
    cluster = make_cluster(1, snapshot_every=0)
    client = Client(cluster)
    for i in range(10):
        client.put("k", i)
    client.call("POST", "/admin/snapshot")
    for i in range(10):
        client.put("k", -i)
    cluster.kill("n1")
    return cluster


def start_and_expect_refusal(cluster: LocalCluster, needle: str) -> None:
    cluster.start("n1")
    code = cluster.procs["n1"].wait(timeout=20)
    text = cluster.log_path("n1").read_text()
    assert code == 3, f"the node exited with {code}, expected a refusal (3); log:\n{text[-2000:]}"
    assert "refusing to start" in text and needle in text


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_corrupted_snapshot_makes_the_node_refuse_to_start(make_cluster: MakeCluster) -> None:
    cluster = stopped_node_with_state(make_cluster)
    snap = sorted((Path(cluster.data_dir("n1")) / "snapshots").glob("snap-*.snap"))[-1]
    flip_byte(snap, snap.stat().st_size // 2)
    start_and_expect_refusal(cluster, "fails its checksum")


def test_a_corrupted_log_record_makes_the_node_refuse_to_start(make_cluster: MakeCluster) -> None:
    cluster = stopped_node_with_state(make_cluster)
    log = Path(cluster.data_dir("n1")) / "raft.log"
    flip_byte(log, log.stat().st_size // 2)
    start_and_expect_refusal(cluster, "checksum mismatch")


@pytest.mark.parametrize(
    "tail", [b"\x00\x00\x01\x00\x12\x34", b'\x00\x00\x00\x05\x00\x00\x00\x00{"i"']
)
def test_a_torn_last_log_record_is_cut_off_and_the_node_starts(
    make_cluster: MakeCluster, tail: bytes
) -> None:
    cluster = stopped_node_with_state(make_cluster)
    with open(Path(cluster.data_dir("n1")) / "raft.log", "ab") as f:
        f.write(tail)
    cluster.start("n1")
    cluster.wait_healthy(20)
    assert "truncating the torn tail" in cluster.log_path("n1").read_text()
    assert Client(cluster).get("k") == -9


def test_an_interrupted_snapshot_write_is_ignored(make_cluster: MakeCluster) -> None:
    cluster = stopped_node_with_state(make_cluster)
    (Path(cluster.data_dir("n1")) / "snapshots" / "snap-00000000000000000099.snap.tmp").write_bytes(
        b"half a snap"
    )
    cluster.start("n1")
    cluster.wait_healthy(20)
    assert Client(cluster).get("k") == -9


def test_an_entry_that_cannot_be_applied_stops_the_node_loudly(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3)
    leader = Client(cluster).leader()
    node = next(n for n in cluster.nodes if n != leader)
    s = wait_for(
        "the follower applied its whole log",
        lambda: (
            (st := status(cluster, node)) and st["applied_index"] == st["log"]["last_index"] and st
        ),
    )
    last = s["log"]["last_index"]
    # A (buggy) leader of a newer term sends a job kill without a job: within the client
    # API's limits, but every replica would fail to apply it alike.
    bad = {
        "term": s["term"] + 1,
        "leader": leader,
        "prev_index": last,
        "prev_term": s["term"],
        "entries": [{"i": last + 1, "t": s["term"] + 1, "c": {"op": "sched.KillJob"}}],
        "commit": last + 1,
    }
    assert peer_post(cluster, node, "/raft/append", bad, sender=leader).json()["success"]
    code = cluster.procs[node].wait(timeout=20)
    text = cluster.log_path(node).read_text()
    assert code == 4 and f"apply of entry {last + 1} failed" in text, text[-1500:]
