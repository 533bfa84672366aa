"""Damage to a stopped follower's files (bit flips, truncation of the log, a snapshot, the
term/vote file): it refuses to start naming the file, or starts on what a crash could have
left and is repaired by the leader; never serves a wrong state, and the majority serves on."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from squall.cluster.local import LocalCluster
from tests.aurora import get
from tests.store.conftest import MakeCluster
from tests.store.helpers import Client, wait_for


def flip(path: Path, at: Callable[[bytes], int]) -> None:
    data = bytearray(path.read_bytes())
    data[at(bytes(data))] ^= 0x01
    path.write_bytes(bytes(data))


def cut(path: Path, keep: Callable[[int], int]) -> None:
    with open(path, "r+b") as f:
        f.truncate(keep(path.stat().st_size))


def log(d: Path) -> Path:
    return d / "raft.log"


def snap(d: Path) -> Path:
    return sorted((d / "snapshots").glob("snap-*.snap"))[-1]


def meta(d: Path) -> Path:
    return d / "raft-meta.json"


def term_digit(data: bytes) -> int:
    """The last digit of the term's value: flipping its low bit keeps valid JSON, another term."""
    start = data.index(b'"term": ') + len(b'"term": ')
    end = start
    while data[end : end + 1].isdigit():
        end += 1
    return end - 1


# file kind, damage, what the log says: a refusal naming the file, or a repaired start
CASES = [
    ("log", lambda d: flip(log(d), lambda b: len(b) // 2), "refused", "raft.log"),
    ("snapshot", lambda d: flip(snap(d), lambda b: len(b) // 2), "refused", ".snap"),
    ("snapshot", lambda d: cut(snap(d), lambda n: n // 2), "refused", ".snap"),
    ("meta", lambda d: flip(meta(d), term_digit), "refused", "raft-meta.json"),
    ("meta", lambda d: cut(meta(d), lambda n: n - 3), "refused", "raft-meta.json"),
    # A cut log tail is what a crash mid-append leaves: the node starts on the rest and
    # the leader sends it what it lost (safe while a majority kept it: docs/failpoints.md).
    ("log", lambda d: cut(log(d), lambda n: n - 40), "repaired", "truncating the torn tail"),
]


def a_damaged_follower(make_cluster: MakeCluster) -> tuple[LocalCluster, Client, str]:
    cluster = make_cluster(3, snapshot_every=0)
    client = Client(cluster)
    for i in range(30):
        client.put(f"k{i % 5}", i)
    node = next(n for n in cluster.nodes if n != client.leader())
    assert client.call("POST", "/admin/snapshot", node=node).status_code == 200
    for i in range(10):
        client.put(f"k{i % 5}", -i)
    wait_for(
        f"{node} applied every write",
        lambda: applied(cluster, node) >= applied(cluster, client.leader()),
    )
    cluster.kill(node)
    return cluster, client, node


def applied(cluster: LocalCluster, node: str) -> int:
    got = get(cluster, node, "/status")
    return int(got["applied_index"]) if got else -1


def converged(cluster: LocalCluster, client: Client, node: str) -> None:
    """The node's state digest equals the leader's at the same applied index."""

    def same() -> bool:
        mine, theirs = get(cluster, node, "/digest"), get(cluster, client.leader(), "/digest")
        return bool(mine and theirs and mine == theirs)

    wait_for(f"{node} holding the leader's state", same, 30)


@pytest.mark.parametrize(("kind", "damage", "outcome", "said"), CASES)
def test_damage_to_a_stopped_followers_file_is_refused_or_repaired_and_the_majority_serves_on(
    make_cluster: MakeCluster, kind: str, damage: Callable[[Path], None], outcome: str, said: str
) -> None:
    cluster, client, node = a_damaged_follower(make_cluster)
    data = Path(cluster.data_dir(node))
    damage(data)
    cluster.start(node)
    if outcome == "refused":
        code = cluster.procs[node].wait(timeout=20)
        text = cluster.log_path(node).read_text()
        assert code == 3, f"{kind}: exited {code}, not a refusal:\n{text[-1500:]}"
        refusal = next(ln for ln in text.splitlines() if "refusing to start" in ln)
        assert said in refusal
        client.put("k0", "while it is down")  # the majority serves on
        # What the refusal tells an operator to do: an empty data dir rejoins from the leader.
        shutil.rmtree(data)
        cluster.start(node)
    else:
        cluster.wait_healthy(20)
        assert said in cluster.log_path(node).read_text()
    client.put("k0", "after")
    converged(cluster, client, node)
