"""An owner is judged by the lock it holds, not by its pid: alive in another PID namespace,
dead once it exits, unknown (left alone) where its lock cannot be seen."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from squall import owner

STAMP = "from squall import owner; print(owner.stamp(), flush=True)"


def test_this_process_is_alive() -> None:
    assert owner.state_of_stamp(owner.stamp()) == "alive"


def test_an_owner_that_exited_is_dead() -> None:
    gone = subprocess.run([sys.executable, "-c", STAMP], capture_output=True, text=True, check=True)
    assert owner.state_of_stamp(gone.stdout.strip()) == "dead"


def test_an_owner_of_another_boot_is_dead() -> None:
    mine = owner.labels()
    assert owner.state({**mine, owner.BOOT: "another-boot"}) == "dead"


def test_an_owner_whose_lock_directory_is_not_ours_is_unknown() -> None:
    mine = owner.labels()
    assert owner.state({**mine, owner.WHERE: "1:2"}) == "unknown"


def test_unlabelled_is_unknown() -> None:
    assert owner.state({}) == "unknown"


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_an_owner_in_another_pid_namespace_is_alive_until_it_exits() -> None:
    holder = subprocess.Popen(
        [
            "unshare",
            "--pid",
            "--fork",
            sys.executable,
            "-c",
            STAMP + "; import os, sys; print(os.getpid(), flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        stamp = holder.stdout.readline().strip()
        pid_inside = holder.stdout.readline().strip()
        if not stamp:
            pytest.skip(f"unshare --pid is not allowed here: {holder.stderr.read()[-300:]}")
        assert pid_inside == "1", "the owner did not run in a PID namespace of its own"
        assert owner.state_of_stamp(stamp) == "alive"
        holder.stdin.close()
        holder.wait(timeout=10)
        assert owner.state_of_stamp(stamp) == "dead"
    finally:
        if holder.poll() is None:
            holder.kill()
