"""Snapshots: the rows codec (objects re-applied one by one) and dump restore to the same state."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from squall.cluster.local import LocalCluster
from squall.systems.aurora.store import codecs
from squall.systems.aurora.store import scheduler as s
from squall.systems.aurora.store.snapshots import SnapshotStore, make_meta
from squall.systems.aurora.store.statemachine import StateMachine
from tests.aurora import AURORA, get
from tests.scheduler.conftest import Applier
from tests.scheduler.helpers import Sched, wait_for


def populate(apply: Applier) -> None:
    """Every kind of object: jobs, tasks in many states, updates with events, quotas, kv, request ids."""
    apply(
        "sched.CreateJob",
        job={
            "role": "a",
            "env": "prod",
            "name": "web",
            "instances": 3,
            "task_config": {"cpu": 1, "cmd": "serve ü"},
        },
    )
    apply("sched.StartJobUpdate", job="a/prod/web", update_id="u1", instances=6, batch_size=4)
    tasks = [
        r[0]
        for r in apply.rows(
            "SELECT task_id FROM sched_tasks WHERE update_id = 'u1' ORDER BY instance"
        )
    ]
    for n, task in enumerate(tasks):
        for frm, to in ((s.PENDING, s.ASSIGNED), (s.ASSIGNED, s.STARTING), (s.STARTING, s.RUNNING))[
            : n % 4
        ]:
            apply("sched.ChangeState", task_id=task, **{"from": frm, "to": to})
    apply("sched.CreateJob", job={"role": "b", "env": "dev", "name": "batch", "instances": 2})
    apply("sched.StartJobUpdate", job="b/dev/batch", update_id="u2", instances=1, batch_size=1)
    apply("sched.AbortJobUpdate", update_id="u2")
    apply("sched.SaveQuota", role="a", quota={"cpu": 0.5, "ram_mb": 512, "disk_mb": 0})
    apply("kv.put", key="k", value={"nested": [1, 2.5, None]})
    apply("sched.KillJob", job="b/dev/batch", request_id="req-1")


def _restored(data: bytes, codec: str, index: int, term: int, where: Path) -> StateMachine:
    where.mkdir(parents=True)
    sm = StateMachine(where, digest_every=0)
    sm.restore(codec, data, index, term)
    return sm


def test_rows_and_dump_snapshots_restore_to_the_digest_of_the_live_state(
    apply: Applier, tmp_path: Path
) -> None:
    populate(apply)
    live = apply.digest()
    for codec in ("rows", "dump"):
        index, term, data, digest = apply.sm.image(codec)
        assert digest == live
        sm = _restored(data, codec, index, term, tmp_path / codec)
        assert sm.digest() == (index, live), f"{codec} restore changed the state"
        sm.close()


def test_the_rows_snapshot_of_a_restored_state_is_the_same_bytes(
    apply: Applier, tmp_path: Path
) -> None:
    populate(apply)
    index, term, data, _ = apply.sm.image("rows")
    sm = _restored(data, "rows", index, term, tmp_path / "again")
    assert sm.image("rows")[2] == data
    sm.close()


def test_rows_restore_goes_through_the_apply_functions(
    apply: Applier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(apply)
    index, term, data, _ = apply.sm.image("rows")
    calls: list[str] = []

    def counting(name: str, real: Any) -> Any:
        def fn(conn: Any, cmd: dict[str, Any]) -> Any:
            calls.append(name)
            return real(conn, cmd)

        return fn

    for name in ("sched.SaveTasks", "sched.SaveJobUpdateEvent", "kv.put"):
        monkeypatch.setitem(s.schema.OPS, name, counting(name, s.schema.OPS[name]))
    _restored(data, "rows", index, term, tmp_path / "r").close()
    tasks = apply.rows("SELECT count(*) FROM sched_tasks")[0][0]
    assert calls.count("sched.SaveTasks") == tasks, "each task is re-saved by SaveTasks, one by one"
    assert calls.count("kv.put") == 1 and "sched.SaveJobUpdateEvent" in calls


def test_a_rows_restore_of_foreign_bytes_says_what_it_got(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a squall-rows/1 snapshot"):
        codecs.get("rows").restore(b"SQLite format 3\x00...", tmp_path / "x.db")


def _offline_digest(data_dir: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "squall.systems.aurora.store.tools", "digest", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, f"offline digest of {data_dir} failed: {out.stderr}"
    return dict(json.loads(out.stdout))


def _as_dump(rows_dir: Path, dump_dir: Path) -> None:
    """The same data dir, its newest rows snapshot re-encoded as a dump snapshot (same index, same state)."""
    shutil.copytree(rows_dir, dump_dir, ignore=shutil.ignore_patterns("state.db*"))
    snaps = SnapshotStore(dump_dir / "snapshots", fsync=False)
    found = snaps.latest()
    assert found is not None and found[0].codec == "rows", "the node wrote no rows snapshot"
    meta, payload = found
    sm = _restored(payload, "rows", meta.index, meta.term, dump_dir.parent / "convert")
    image = sm.image("dump")[2]
    sm.close()
    for f in snaps.files():
        f.unlink()
    snaps.write(make_meta(meta.index, meta.term, "dump", image), image)


def test_a_node_restored_from_rows_and_one_restored_from_dump_agree(
    make_rows_cluster: LocalCluster, tmp_path: Path
) -> None:
    c = make_rows_cluster
    sched = Sched(c)
    job = sched.create_job("snap", 2)
    uid, tasks = sched.start_update(job, 8, 3)
    for t in tasks[:5]:
        assert sched.transition(t, "PENDING", "ASSIGNED").status_code == 200
    leader = sched.leader()
    snap = sched.ok("POST", "/admin/snapshot")
    assert snap["codec"] == "rows"
    sched.transition(tasks[0], "ASSIGNED", "STARTING")  # a log tail after the snapshot
    live = wait_for(
        "every node applied the last write",
        lambda: (
            len({json.dumps(get(c, n, "/digest")) for n in c.nodes}) == 1
            and get(c, leader, "/digest")
        ),
    )
    c.kill(leader)
    _as_dump(Path(c.data_dir(leader)), tmp_path / "dump-copy")
    from_rows, from_dump = (
        _offline_digest(Path(c.data_dir(leader))),
        _offline_digest(tmp_path / "dump-copy"),
    )
    # Both restores also list the same applied request ids (the tool's third field).
    assert from_rows.pop("requests") == from_dump.pop("requests")
    assert from_rows == from_dump == live
    c.start(leader)  # the live node itself restores from its rows snapshot plus the log tail
    # The others elected a new leader meanwhile (a no-op entry: new index, same state).
    wait_for(
        "the restarted node serves the state it had",
        lambda: (get(c, leader, "/digest") or {}).get("digest") == live["digest"],
    )


@pytest.fixture
def make_rows_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    from squall.cluster.base import ClusterSpec

    c = LocalCluster(
        ClusterSpec(
            name="rows",
            nodes=3,
            data_root=tmp_path / "rows",
            options={"snapshot_every": 0, "snapshot_codec": "rows"},
        ),
        AURORA,
    )
    try:
        c.up()
        yield c
    finally:
        c.down()
