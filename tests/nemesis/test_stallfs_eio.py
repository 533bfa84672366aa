"""stallfs's eio mode on a real directory (handlers called directly): a failed fsync loses the
file's unsynced tail, as Linux may, in stallfs and in lazyfs (which the power cut mounts)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

mfusepy = pytest.importorskip("mfusepy")
from squall.nemesis.lazyfs import LazyFS  # noqa: E402
from squall.nemesis.stallfs import StallFS  # noqa: E402


@pytest.fixture(params=[StallFS, LazyFS])
def fs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[StallFS, Path]]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "old.log").write_bytes(b"at-mount;")
    (tmp_path / "control").mkdir()
    root = os.open(data, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield request.param(root, tmp_path / "control"), data
    finally:
        os.close(root)


def append(fs: StallFS, path: str, data: bytes, fh: int) -> None:
    fs.write(path, data, os.fstat(fh).st_size, fh)


def test_a_failed_fsync_drops_what_was_written_since_the_last_good_one(
    fs: tuple[StallFS, Path],
) -> None:
    stall, data = fs
    fh = stall.create("/raft.log", 0o644, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    append(stall, "/raft.log", b"entry-1;", fh)
    stall.fsync("/raft.log", 0, fh)
    append(stall, "/raft.log", b"entry-2;", fh)
    stall.mode = "eio"
    with pytest.raises(mfusepy.FuseOSError):
        stall.fsync("/raft.log", 0, fh)
    stall.mode = "pass"
    stall.fsync("/raft.log", 0, fh)  # succeeds, without entry-2: the retry a forgiving store makes
    stall.release("/raft.log", fh)
    assert (data / "raft.log").read_bytes() == b"entry-1;"


def test_a_file_found_at_mount_keeps_its_contents_on_a_failed_fsync(
    fs: tuple[StallFS, Path],
) -> None:
    stall, data = fs
    fh = stall.open("/old.log", os.O_WRONLY)
    append(stall, "/old.log", b"later;", fh)
    stall.mode = "eio"
    with pytest.raises(mfusepy.FuseOSError):
        stall.fsync("/old.log", 1, fh)
    stall.release("/old.log", fh)
    assert (data / "old.log").read_bytes() == b"at-mount;"


def test_a_full_disk_fails_writes_and_creations_until_space_returns(
    fs: tuple[StallFS, Path],
) -> None:
    stall, data = fs
    fh = stall.open("/old.log", os.O_WRONLY)
    stall.mode = "enospc"
    with pytest.raises(mfusepy.FuseOSError) as full:
        append(stall, "/old.log", b"more;", fh)
    assert full.value.errno == errno.ENOSPC
    with pytest.raises(mfusepy.FuseOSError):
        stall.create("/new.log", 0o644, os.O_WRONLY | os.O_CREAT)
    stall.fsync("/old.log", 0, fh)  # what is already written can still be made durable
    stall.mode = "pass"
    append(stall, "/old.log", b"more;", fh)
    stall.release("/old.log", fh)
    assert (data / "old.log").read_bytes() == b"at-mount;more;"
