"""lazyfs's durability model, on a real directory: its FUSE handlers called directly.

Each test drives the handlers the kernel would call (create, write, fsync,
rename, ...) against real files, cuts the power, and reads what is left on
disk. The mount itself is exercised by test_powercut_docker.py.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("mfusepy")
from squall.nemesis.lazyfs import ATTIC, LazyFS  # noqa: E402


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[tuple[LazyFS, Path]]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "old.json").write_bytes(b"old-and-durable")
    root = os.open(data, os.O_RDONLY | os.O_DIRECTORY)
    try:
        (tmp_path / "control").mkdir()
        yield LazyFS(root, tmp_path / "control"), data
    finally:
        os.close(root)


def write_file(fs: LazyFS, path: str, data: bytes, sync: bool) -> None:
    fh = fs.create(path, 0o644, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        fs.write(path, data, 0, fh)
        if sync:
            fs.fsync(path, 0, fh)
    finally:
        fs.release(path, fh)


def append(fs: LazyFS, path: str, data: bytes, sync: bool) -> None:
    fh = fs.open(path, os.O_WRONLY)
    try:
        fs.write(path, data, os.fstat(fh).st_size, fh)
        if sync:
            fs.fsync(path, 1, fh)
    finally:
        fs.release(path, fh)


def test_a_fsynced_append_survives_and_the_unsynced_tail_is_cut(fs: tuple[LazyFS, Path]) -> None:
    lazy, data = fs
    write_file(lazy, "/raft.log", b"entry-1;", sync=True)
    append(lazy, "/raft.log", b"entry-2;", sync=True)
    append(lazy, "/raft.log", b"entry-3-unsynced;", sync=False)
    dropped = lazy.power_cut()
    assert (data / "raft.log").read_bytes() == b"entry-1;entry-2;"
    assert dropped["bytes_dropped"] == len(b"entry-3-unsynced;")
    assert dropped["files_truncated"] == ["raft.log"]


def test_a_file_never_synced_nor_committed_vanishes(fs: tuple[LazyFS, Path]) -> None:
    lazy, data = fs
    write_file(lazy, "/raft.log", b"never fsynced", sync=False)
    dropped = lazy.power_cut()
    assert not (data / "raft.log").exists()
    assert dropped["names_dropped"] == ["raft.log"]
    assert (data / "old.json").read_bytes() == b"old-and-durable"


def test_an_atomic_replace_with_fsyncs_survives_whole(fs: tuple[LazyFS, Path]) -> None:
    lazy, data = fs
    write_file(lazy, "/old.json.tmp", b"new-and-durable", sync=True)
    lazy.rename("/old.json.tmp", "/old.json")
    dirfh = os.open(data, os.O_RDONLY)
    try:
        lazy.fsyncdir("/", 0, dirfh)
    finally:
        os.close(dirfh)
    lazy.power_cut()
    assert sorted(os.listdir(data)) == ["old.json"]
    assert (data / "old.json").read_bytes() == b"new-and-durable"


def replace_unsynced(lazy: LazyFS) -> None:
    """write_atomic without its fsyncs: temp file, rename over."""
    write_file(lazy, "/old.json.tmp", b"new-but-unsynced", sync=False)
    lazy.rename("/old.json.tmp", "/old.json")


def test_an_uncommitted_replace_brings_back_the_old_file(fs: tuple[LazyFS, Path]) -> None:
    lazy, data = fs
    replace_unsynced(lazy)
    lazy.power_cut()
    assert sorted(os.listdir(data)) == ["old.json"]
    assert (data / "old.json").read_bytes() == b"old-and-durable"


def test_a_replace_committed_by_another_fsync_comes_back_empty(fs: tuple[LazyFS, Path]) -> None:
    # ext4 without a sync of the new file: the rename is journaled, the data is not.
    lazy, data = fs
    replace_unsynced(lazy)
    write_file(lazy, "/other.log", b"synced", sync=True)
    lazy.power_cut()
    assert sorted(os.listdir(data)) == ["old.json", "other.log"]
    assert (data / "old.json").read_bytes() == b""
    assert (data / "other.log").read_bytes() == b"synced"


def test_an_uncommitted_unlink_is_undone_and_the_attic_is_gone(fs: tuple[LazyFS, Path]) -> None:
    lazy, data = fs
    lazy.unlink("/old.json")
    assert lazy.readdir("/", 0) == [".", ".."], "the attic must not show in the mount"
    lazy.power_cut()
    assert sorted(os.listdir(data)) == ["old.json"]
    assert not (data / ATTIC).exists()
    assert (data / "old.json").read_bytes() == b"old-and-durable"


def test_a_truncate_lowers_what_is_durable(fs: tuple[LazyFS, Path]) -> None:
    lazy, data = fs
    lazy.truncate("/old.json", 3)
    append(lazy, "/old.json", b"-rewritten-unsynced", sync=False)
    lazy.power_cut()
    assert (data / "old.json").read_bytes() == b"old"


def test_a_new_directory_without_a_commit_vanishes_with_its_files(fs: tuple[LazyFS, Path]) -> None:
    lazy, data = fs
    lazy.mkdir("/snapshots", 0o755)
    write_file(lazy, "/snapshots/snap-1.snap", b"unsynced", sync=False)
    lazy.power_cut()
    assert sorted(os.listdir(data)) == ["old.json"]


def test_a_wipe_flag_empties_the_data_dir_at_mount(tmp_path: Path) -> None:
    from squall.nemesis.powercut import WIPE

    data, control = tmp_path / "data", tmp_path / "control"
    (data / "snapshots").mkdir(parents=True)
    (data / "raft.log").write_bytes(b"")
    control.mkdir()
    (control / WIPE).touch()
    root = os.open(data, os.O_RDONLY | os.O_DIRECTORY)
    try:
        LazyFS(root, control)
    finally:
        os.close(root)
    assert os.listdir(data) == []
    assert not (control / WIPE).exists(), "the flag must be consumed, or every restart wipes"


def test_a_cut_requested_through_the_control_file_is_reported_with_its_token(
    fs: tuple[LazyFS, Path], tmp_path: Path
) -> None:
    lazy, data = fs
    control = tmp_path / "control"
    assert (control / "power-state").read_text().split() == ["on"]
    write_file(lazy, "/raft.log", b"unsynced", sync=False)
    (control / "power").write_text("cut t-42\n")
    deadline = time.monotonic() + 10
    while not (control / "power-state").read_text().startswith("cut t-42 "):
        assert time.monotonic() < deadline, "lazyfs never reported the requested cut"
        lazy.tick.wait(0.02)
    report = json.loads((control / "power-state").read_text().split(" ", 2)[2])
    assert report["names_dropped"] == ["raft.log"]
    assert not (data / "raft.log").exists()
