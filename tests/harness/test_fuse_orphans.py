"""The leftover sweep kills FUSE daemons of ours that outlived their container,
and nothing else."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from squall.cluster.cleanup import fuse_orphans, reap_fuse_orphans

HOLD = "import time; time.sleep(60)"


def _spawn(*argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", HOLD, *argv])


def _only(pid: int, tmp_path: Path) -> Path:
    """A /proc holding just ``pid``: the sweep must never see (and kill) the FUSE
    layers of runs going on beside the tests. It once did: this test reaped the
    live stallfs of a matrix case running on the same machine."""
    fake = tmp_path / "proc"
    (fake / str(pid)).mkdir(parents=True)
    for name in ("cmdline", "cgroup"):
        (fake / str(pid) / name).write_bytes(Path(f"/proc/{pid}/{name}").read_bytes())
    return fake


def test_a_daemon_in_no_known_container_is_an_orphan_and_is_killed(tmp_path: Path) -> None:
    proc = _spawn("/opt/squall-nemesis/lazyfs.py", "--mount", "/var/lib/squall")
    try:
        assert proc.pid in fuse_orphans(set())
        no_containers = SimpleNamespace(containers=SimpleNamespace(list=lambda all: []))
        reaped = reap_fuse_orphans(no_containers, _only(proc.pid, tmp_path))  # type: ignore[arg-type]
        assert f"orphaned FUSE daemon pid {proc.pid}" in reaped
        assert proc.wait(10) == -9
    finally:
        proc.kill()
        proc.wait()


def test_a_process_that_is_not_our_fuse_layer_is_left_alone() -> None:
    proc = _spawn("/opt/elsewhere/lazyfs.py.bak")
    try:
        assert proc.pid not in fuse_orphans(set())
    finally:
        proc.kill()
        proc.wait()


def test_a_daemon_whose_container_still_exists_is_left_alone(tmp_path: Path) -> None:
    node = "ab" * 32
    pid = tmp_path / "4242"
    pid.mkdir()
    pid.joinpath("cmdline").write_bytes(b"python3\0/opt/squall-nemesis/stallfs.py\0--mount\0")
    pid.joinpath("cgroup").write_text(f"0::/system.slice/docker-{node}.scope\n")
    assert fuse_orphans({node}, proc=tmp_path) == []
    assert fuse_orphans({"cd" * 32}, proc=tmp_path) == [4242]
