"""Processes of this machine, from /proc: whether one is stopped, when it started, whether it
is still the owner of something it created (docker labels, a host's run manifest)."""

from __future__ import annotations

import os
from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (state) on; the name in () may hold spaces."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_stopped(pid: int) -> bool:
    """Whether ``pid`` is stopped by a signal (SIGSTOP): state T."""
    fields = _stat_fields(pid) if pid > 0 else None
    return bool(fields) and fields[0] == "T"  # type: ignore[index]


def process_start_time(pid: int) -> float | None:
    """When ``pid`` started (unix time), or None if unknown (no /proc)."""
    fields = _stat_fields(pid)
    try:
        ticks = int(fields[19])  # type: ignore[index]  # field 22 of stat
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
    except (TypeError, OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def alive_since(pid: int, created: float) -> bool:
    """Whether process ``pid`` lives and could have created something at unix time ``created``.

    A pid alone is not enough: after a reboot or a long day the pid may
    belong to another process, so a process that started after the object
    was created cannot be its owner.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    started = process_start_time(pid)
    return started is None or started <= created + 2.0
