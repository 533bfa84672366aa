"""The SQLite state machine: deterministic apply, exactly once, digests of logical state."""

from __future__ import annotations

from pathlib import Path

import pytest

from squall.systems.aurora.store import schema
from squall.systems.aurora.store.statemachine import StateMachine, applied_of
from squall.systems.aurora.store.wal import Entry


def puts(n: int, start: int = 1) -> list[Entry]:
    return [
        Entry(i, 1, {"op": "kv.put", "key": f"k{i % 3}", "value": i})
        for i in range(start, start + n)
    ]


def machine(tmp_path: Path, name: str) -> StateMachine:
    (tmp_path / name).mkdir()
    sm = StateMachine(tmp_path / name, digest_every=5)
    sm.open_empty()
    return sm


def test_replicas_applying_the_same_entries_have_the_same_digest(tmp_path: Path) -> None:
    a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
    a.apply(puts(20))
    for chunk in (puts(7), puts(13, start=8)):  # different batching, same entries
        b.apply(chunk)
    assert a.digest() == b.digest()


def test_an_entry_is_applied_once_even_if_delivered_twice(tmp_path: Path) -> None:
    sm = machine(tmp_path, "a")
    sm.apply(puts(5))
    again = sm.apply(puts(5))
    assert again == [] and sm.applied_index == 5


def test_a_dump_image_restores_to_the_same_digest(tmp_path: Path) -> None:
    a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
    a.apply(puts(12))
    index, term, image, digest = a.image("dump")
    assert b.restore("dump", image, index, term) == digest
    assert b.digest() == (12, digest)


def test_digests_are_recorded_every_digest_every_entries(tmp_path: Path) -> None:
    sm = machine(tmp_path, "a")
    sm.apply(puts(12))
    assert [h["index"] for h in sm.digests.read() if h["event"] == "apply"] == [5, 10]


def test_an_apply_digest_is_of_its_own_index_while_the_writer_applies_on(tmp_path: Path) -> None:
    # One batch: the writer applies entries 6..40 while the digest of 5 (then 10, ...)
    # is computed on its own thread; each must still be the state at its index.
    a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
    a.apply(puts(40))
    recorded = {h["index"]: h["digest"] for h in a.digests.read() if h["event"] == "apply"}
    assert sorted(recorded) == [5, 10, 15, 20, 25, 30, 35, 40]
    for index in sorted(recorded):
        b.apply(puts(5, start=index - 4))
        assert b.digest() == (index, recorded[index]), (
            f"the digest recorded at {index} is of another state"
        )


def _boom(conn: object, cmd: dict[str, object]) -> None:
    raise RuntimeError("an apply function failed unexpectedly")


schema.OPS.setdefault("test.boom", _boom)  # a buggy op, for the test below only


def test_an_entry_failing_mid_run_undoes_its_whole_run_and_the_applied_index(
    tmp_path: Path,
) -> None:
    sm = machine(tmp_path, "a")
    sm.apply(puts(5))
    before = sm.digest()
    with pytest.raises(
        RuntimeError, match="failed unexpectedly"
    ):  # 6..8 share a run (next digest at 10)
        sm.apply([*puts(2, start=6), Entry(8, 1, {"op": "test.boom"})])
    assert sm.conn is not None
    assert (sm.applied_index, applied_of(sm.conn)) == (5, (5, 1)), (
        "the applied index moved past the failed run"
    )
    assert sm.digest() == before, "entries of the failed run stayed in the state"
    assert [e.index for e, _ in sm.apply(puts(2, start=6))] == [6, 7]
