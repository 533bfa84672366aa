"""Fixtures for the store's tests: real node processes on 127.0.0.1, always reaped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from squall.cluster.base import ClusterSpec
from squall.cluster.local import LocalCluster
from tests.aurora import AURORA
from tests.store.helpers import Client

MakeCluster = Callable[..., LocalCluster]


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[MakeCluster]:
    """Starts a LocalCluster (``up=False`` leaves it stopped); every one is torn down after the test."""
    made: list[LocalCluster] = []

    def make(nodes: int = 3, up: bool = True, bugs: Any = (), **options: Any) -> LocalCluster:
        """``options`` are the store's own (snapshot_every=0, request_timeout_ms=1000...)."""
        spec = ClusterSpec(
            name=f"t{len(made)}",
            nodes=nodes,
            data_root=tmp_path / f"c{len(made)}",
            bugs=tuple(bugs),
            options=options,
        )
        c = LocalCluster(spec, AURORA)
        made.append(c)
        if up:
            c.up()
        return c

    try:
        yield make
    finally:
        for c in made:
            c.down()


@pytest.fixture
def cluster3(make_cluster: MakeCluster) -> LocalCluster:
    return make_cluster(3)


@pytest.fixture
def client3(cluster3: LocalCluster) -> Client:
    return Client(cluster3)
