"""Reads are linearizable: a leader that may have been deposed never answers from its own state."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests

from tests.aurora import node_url
from tests.store.conftest import MakeCluster
from tests.store.helpers import Client, wait_for


@pytest.mark.parametrize("bug, stale_possible", [(None, False), ("stale-read", True)])
def test_a_deposed_leader_never_serves_a_stale_read(
    make_cluster: MakeCluster, bug: str | None, stale_possible: bool
) -> None:
    cluster = make_cluster(3, bugs=[bug] if bug else [])
    client = Client(cluster)
    client.put("k", "old")
    old = client.leader()
    cluster.pause(old)
    wait_for("a new leader", lambda: (cluster.leader(0.1) or old) != old)
    client.put("k", "new")
    # The read reaches the old leader while it still believes it leads: it is
    # queued in its socket during the pause and handled first thing on resume.
    answer: dict[str, Any] = {}

    def read() -> None:
        r = requests.get(node_url(cluster, old) + "/kv/k", timeout=10)
        answer.update(status=r.status_code, body=r.json())

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(0.3)
    assert reader.is_alive(), f"a paused node answered: {answer}"  # so the request is in its socket
    cluster.resume(old)
    reader.join(15)
    assert answer, "the read on the old leader never returned"
    stale = answer["status"] == 200 and answer["body"]["value"] == "old"
    if stale_possible:
        assert stale, f"with stale-read the old leader should answer from its own state: {answer}"
    else:
        assert not stale, f"the deposed leader served a stale read: {answer}"
