"""Fixtures for the scheduler's tests: a state machine on a real SQLite file, and real node processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import squall.systems.aurora.store.scheduler  # noqa: F401 - registers the scheduler's tables, ops and the rows codec
from squall.cluster.base import ClusterSpec
from squall.cluster.local import LocalCluster
from squall.systems.aurora.store.statemachine import StateMachine
from squall.systems.aurora.store.wal import Entry
from tests.aurora import AURORA
from tests.scheduler.helpers import Sched


class Applier:
    """A StateMachine fed commands as consecutive log entries, as a follower would apply them."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.sm = StateMachine(data_dir, digest_every=0)
        self.sm.open_empty()

    def __call__(self, op: str, **cmd: Any) -> Any:
        entry = Entry(
            self.sm.applied_index + 1, 1, {"op": op, "ts": 1000 + self.sm.applied_index, **cmd}
        )
        [(_e, result)] = self.sm.apply([entry])
        return result

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        assert self.sm.conn is not None
        return self.sm.conn.execute(sql, args).fetchall()

    def digest(self) -> str:
        return self.sm.digest()[1]


@pytest.fixture
def apply(tmp_path: Path) -> Iterator[Applier]:
    a = Applier(tmp_path / "state")
    try:
        yield a
    finally:
        a.sm.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Three real nodes shared by a module's tests (each test uses its own job names)."""
    c = LocalCluster(
        ClusterSpec(name="sched", nodes=3, data_root=tmp_path_factory.mktemp("sched")), AURORA
    )
    try:
        c.up()
        yield c
    finally:
        c.down()


@pytest.fixture(scope="module")
def sched(cluster: LocalCluster) -> Sched:
    return Sched(cluster)
