"""The local backend: processes it starts are reaped, and collect copies what a person needs."""

from __future__ import annotations

import os
from pathlib import Path

from tests.aurora import status
from tests.store.conftest import MakeCluster
from tests.store.helpers import Client


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_down_reaps_every_node_process(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3)
    cluster.pause("n2")  # a paused node must be reaped too
    pids = [p.pid for p in cluster.procs.values()]
    cluster.down()
    assert [pid for pid in pids if alive(pid)] == []


def test_collect_copies_logs_and_a_restorable_data_dir(
    make_cluster: MakeCluster, tmp_path: Path
) -> None:
    cluster = make_cluster(1)
    Client(cluster).put("k", 1)
    cluster.collect(tmp_path / "out", data=True)
    assert "serving on" in (tmp_path / "out" / "n1" / "node.log").read_text()
    assert (tmp_path / "out" / "n1" / "data" / "raft.log").stat().st_size > 0
    assert status(cluster, "n1") is not None, "the node should run on after collect"


def test_a_killed_node_restarts_with_its_data(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(1)
    client = Client(cluster)
    client.put("k", "kept")
    cluster.kill("n1")
    assert not cluster.is_running("n1")
    cluster.start("n1")
    assert client.get("k") == "kept"
