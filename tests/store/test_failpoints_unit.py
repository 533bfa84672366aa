"""Failpoints as values: parsing, arming, counting, and that every listed point is placed."""

from __future__ import annotations

import asyncio
import errno
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from squall.systems.aurora.store import failpoints, fsutil
from squall.systems.aurora.store.wal import Wal

STORE = Path(failpoints.__file__).parent


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    failpoints.reset()
    yield
    failpoints.reset()


class Stopped(Exception):
    """What stop_now does in these tests instead of ending the process."""


def stopped(reason: str) -> None:
    raise Stopped(reason)


def one_unsynced_entry(tmp_path: Path) -> Wal:
    w = Wal(tmp_path / "raft.log")
    w.open()
    w.append(1, {"op": "noop"})
    return w


def placed_points() -> set[str]:
    """Every failpoint name the store's source hits: literals, and write_atomic's prefixes."""
    names: set[str] = set()
    for src in STORE.glob("*.py"):
        text = src.read_text()
        names |= set(re.findall(r'a?hit\("([a-z.\-]+)"\)', text))
        names |= set(re.findall(r'fsync_(?:fd|dir)\([^)]*"([a-z\-]+\.[a-z.\-]+)"', text))
        prefixes = set(re.findall(r'point="([a-z.\-]+)"', text))
        prefixes |= set(re.findall(r'self\.fsync, "([a-z.\-]+)"', text))
        names |= {f"{p}.{s}" for p in prefixes for s in failpoints.ATOMIC_STEPS}
    return names


def test_every_listed_failpoint_is_placed_in_the_store_and_no_other() -> None:
    assert placed_points() == set(failpoints.POINTS)


def test_every_failpoint_has_a_sentence() -> None:
    short = [name for name, said in failpoints.POINTS.items() if len(said.split()) < 5]
    assert short == []


def test_a_disarmed_point_does_nothing_and_counts_nothing() -> None:
    failpoints.hit("apply.before")
    assert failpoints.hits() == {}


def test_an_unknown_point_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(failpoints.FailpointError, match="unknown; known: .*apply.after"):
        failpoints.arm("apply.middle", "crash")


@pytest.mark.parametrize("bad", ["explode", "sleep:", "sleep:-1", "0*crash", "x*error"])
def test_a_bad_action_is_refused_naming_the_allowed_ones(bad: str) -> None:
    with pytest.raises(failpoints.FailpointError, match="crash|count"):
        failpoints.parse_action(bad)


def test_error_raises_eio_and_is_counted() -> None:
    failpoints.arm("apply.before", "error")
    with pytest.raises(OSError) as info:
        failpoints.hit("apply.before")
    assert info.value.errno == errno.EIO
    assert failpoints.hits() == {"apply.before": 1}


def test_a_counted_action_fires_that_many_times_then_disarms() -> None:
    failpoints.arm("apply.before", "2*error")
    for _ in range(2):
        with pytest.raises(OSError):
            failpoints.hit("apply.before")
    failpoints.hit("apply.before")
    assert failpoints.armed() == {}


def test_sleep_stalls_the_thread_for_its_milliseconds() -> None:
    failpoints.arm("apply.before", "sleep:150")
    t0 = time.monotonic()
    failpoints.hit("apply.before")
    assert time.monotonic() - t0 >= 0.15


def test_sleep_on_the_event_loop_suspends_only_the_coroutine() -> None:
    failpoints.arm("snapshot.install.received", "sleep:200")
    ticks: list[float] = []

    async def ticker() -> None:
        for _ in range(5):
            ticks.append(time.monotonic())
            await asyncio.sleep(0.02)

    async def go() -> None:
        await asyncio.gather(failpoints.ahit("snapshot.install.received"), ticker())

    asyncio.run(go())
    assert len(ticks) == 5 and ticks[-1] - ticks[0] < 0.19


def test_the_environment_arms_points_and_refuses_a_typo() -> None:
    assert {
        k: str(v)
        for k, v in failpoints.parse_spec("apply.before=crash,meta.renamed=sleep:5").items()
    } == {
        "apply.before": "crash",
        "meta.renamed": "sleep:5",
    }
    with pytest.raises(failpoints.FailpointError, match="apply.befor"):
        failpoints.parse_spec("apply.befor=crash")


def test_a_next_start_point_is_armed_once_and_its_file_removed(tmp_path: Path) -> None:
    failpoints.arm_next_start(tmp_path, "restore.before", "error")
    failpoints.arm_from(tmp_path, env="")
    assert failpoints.armed() == {"restore.before": "error"}
    assert not (tmp_path / failpoints.NEXT_START).exists()


def test_an_error_before_the_log_fsync_stops_the_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fsutil, "stop_now", stopped)
    w = one_unsynced_entry(tmp_path)
    failpoints.arm("wal.append.before-fsync", "error")
    with pytest.raises(Stopped, match=r"fsync of .*raft.log failed .*the node stops"):
        asyncio.run(w.sync())
    w.close()
    assert w.durable_index == 0


def test_forgive_fsync_fails_the_request_and_carries_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fsutil, "forgive_fsync", True)
    w = one_unsynced_entry(tmp_path)
    failpoints.arm("wal.append.before-fsync", "1*error")
    with pytest.raises(OSError):
        asyncio.run(w.sync())
    w.append(1, {"op": "noop"})
    asyncio.run(w.sync())  # the bug: this later fsync is taken to cover entry 1 too
    assert w.durable_index == 2
    w.close()


@pytest.mark.parametrize("rename_first", [False, True])
def test_only_rename_before_fsync_has_the_new_name_in_place_before_its_data_is_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rename_first: bool
) -> None:
    monkeypatch.setattr(fsutil, "stop_now", stopped)
    failpoints.arm("snapshot.tmp-written", "error")  # fails the step that makes the data durable
    target = tmp_path / "snap"
    with pytest.raises(Stopped):
        fsutil.write_atomic(target, [b"x"], True, "snapshot", rename_first=rename_first)
    assert target.exists() == rename_first


def test_docs_list_exactly_the_failpoints_with_their_sentences() -> None:
    doc = (STORE.parents[3] / "docs" / "failpoints.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z.\-]+)` \| (.+) \|$", doc, re.M))
    assert rows == failpoints.POINTS


def test_a_failed_log_write_stops_the_node_rather_than_append_after_a_torn_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fsutil, "stop_now", stopped)
    monkeypatch.setattr("squall.systems.aurora.store.wal.stop_now", stopped)
    w = one_unsynced_entry(tmp_path)

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("squall.systems.aurora.store.wal.os.write", full)
    with pytest.raises(Stopped, match="No space left on device.*the node stops"):
        asyncio.run(w.sync())
    w.close()
