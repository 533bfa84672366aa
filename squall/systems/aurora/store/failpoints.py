"""Failpoints: named places on the durability path where a test can crash, stall or fail the node.

A SIGKILL lands wherever the scheduler happens to be; a failpoint lands at
the one step a recovery bug hides behind (etcd's robustness suite found lost
writes and revisions going backwards this way). Every point is listed in
``POINTS`` below with a sentence saying what is on disk when it fires; the
store calls ``hit(name)`` (or ``await ahit(name)`` on the event loop) there.

Off unless armed. Disarmed, a hit is one lookup in an empty module-level
dict, so the points can stay in the production path. Armed per node:

* by the environment, ``SQUALL_FAILPOINTS="wal.append.after-fsync=crash,apply.before=sleep:200"``,
  read when the node starts;
* by the admin API, ``POST /admin/failpoints`` signed with the cluster secret
  (``{"point": ..., "action": ...}``; ``{"point": ..., "action": "off"}`` disarms);
  ``"at": "next-start"`` arms it for the next start only, through a file in
  the data directory that the node removes before it arms the point (so a
  crash in restore cannot crash-loop the node).

Actions: ``crash`` (``os._exit`` at once: no flush, no cleanup, a kill at
exactly that step), ``sleep:<ms>``, ``error`` (an ``OSError(EIO)`` raised
there, as a failing disk would; a point placed before an fsync makes that
fsync fail). ``<n>*<action>`` fires n times, then disarms. Every firing is
counted (``hits()``, reported in ``/status``) and logged first, so the suite
can tell which point a crashed node died at.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("squall.failpoints")
ENV = "SQUALL_FAILPOINTS"
NEXT_START = "failpoints-next-start.json"  # in the data dir: points armed for one start
CRASH_EXIT = 86  # the exit status of a node a failpoint crashed (not a signal's 128+n)

# The steps of write_atomic (fsutil), one set per file written that way.
ATOMIC_STEPS = {
    "tmp-written": "the temp file holds the new bytes, not yet fsynced (an error here is a failed fsync)",
    "tmp-fsynced": "the temp file is durable, not yet renamed over the old one",
    "renamed": "the new file is in place, the directory entry not yet fsynced",
    "dir-fsynced": "the rename is durable",
}
ATOMIC_FILES = {
    "snapshot": "a snapshot file",
    "meta": "the term/vote file (raft-meta.json)",
    "wal.compact": "the log rewritten from a snapshot's index (entries it holds dropped)",
}


def _atomic() -> dict[str, str]:
    return {
        f"{prefix}.{step}": f"{what}: {said}"
        for prefix, what in ATOMIC_FILES.items()
        for step, said in ATOMIC_STEPS.items()
    }


POINTS: dict[str, str] = {
    "wal.append.before-fsync": "log records written to raft.log, not yet fsynced "
    "(an error here is a failed log fsync)",
    "wal.append.after-fsync": "log records fsynced, not yet counted durable: no one was told",
    "apply.before": "a batch of committed entries about to be applied to the SQLite state",
    "apply.after": "a batch applied and committed in SQLite, its waiters not yet answered",
    "snapshot.install.received": "a follower verified the leader's snapshot, state untouched",
    "snapshot.install.restored": "the leader's snapshot restored into the state, "
    "neither kept as a file nor the log compacted",
    "restore.before": "on start: the log is read, the newest snapshot not yet restored",
    "restore.after": "on start: snapshot restored and log replayed, nothing served yet",
    **_atomic(),
}


@dataclass(frozen=True, kw_only=True)
class Action:
    kind: str  # crash | sleep | error
    ms: int = 0
    times: int | None = None  # None: every hit

    def __str__(self) -> str:
        base = f"sleep:{self.ms}" if self.kind == "sleep" else self.kind
        return base if self.times is None else f"{self.times}*{base}"


class FailpointError(ValueError):
    """A failpoint or action that does not exist; the message lists what does."""


class Fired(OSError):
    """The ``error`` action: the step fails as a disk would (EIO)."""


# The whole disarmed cost: a lookup in this dict, empty unless a test armed something.
_ARMED: dict[str, Action] = {}
_HITS: dict[str, int] = {}
_lock = threading.Lock()  # points fire on the loop and on I/O threads


def parse_action(text: str) -> Action:
    raw = text.strip()
    times: int | None = None
    if "*" in raw:
        count, _, raw = raw.partition("*")
        if not count.isdigit() or int(count) < 1:
            raise FailpointError(f"failpoint action {text!r}: the count before * must be >= 1")
        times = int(count)
    if raw in ("crash", "error"):
        return Action(kind=raw, times=times)
    if raw.startswith("sleep:") and raw[6:].isdigit():
        return Action(kind="sleep", ms=int(raw[6:]), times=times)
    raise FailpointError(
        f"failpoint action {text!r} is unknown; use crash, error or sleep:<ms> "
        "(optionally <n>*action)"
    )


def _check_point(name: str) -> None:
    if name not in POINTS:
        raise FailpointError(f"failpoint {name!r} is unknown; known: {', '.join(sorted(POINTS))}")


def arm(name: str, action: str | Action) -> Action:
    _check_point(name)
    act = parse_action(action) if isinstance(action, str) else action
    with _lock:
        _ARMED[name] = act
    log.warning("failpoint %s armed: %s", name, act)
    return act


def disarm(name: str | None = None) -> None:
    """Disarms one point (or every point, with None)."""
    if name is not None:
        _check_point(name)
    with _lock:
        if name is None:
            _ARMED.clear()
        else:
            _ARMED.pop(name, None)


def armed() -> dict[str, str]:
    with _lock:
        return {k: str(v) for k, v in _ARMED.items()}


def hits() -> dict[str, int]:
    with _lock:
        return dict(_HITS)


def reset() -> None:
    """Disarms everything and forgets the counts (tests)."""
    with _lock:
        _ARMED.clear()
        _HITS.clear()


def parse_spec(spec: str) -> dict[str, Action]:
    """``name=action,name=action`` (the environment's form) -> actions; FailpointError if bad."""
    out: dict[str, Action] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        name, eq, action = part.partition("=")
        if not eq:
            raise FailpointError(f"{ENV}: {part!r} is not point=action")
        _check_point(name.strip())
        out[name.strip()] = parse_action(action)
    return out


def arm_from(data_dir: Path, env: str | None = None) -> None:
    """Arms what the environment and the data dir's next-start file ask for (on start)."""
    spec = os.environ.get(ENV, "") if env is None else env
    for name, action in parse_spec(spec).items():
        arm(name, action)
    path = data_dir / NEXT_START
    if not path.exists():
        return
    try:
        wanted = json.loads(path.read_text())
        if not isinstance(wanted, dict):
            raise ValueError("not a mapping")
    except ValueError as e:
        raise FailpointError(f"{path} is unreadable ({e}); remove it") from None
    # Removed (durably) before anything is armed: a point that crashes the node in
    # restore must fire once, not on every restart after it.
    path.unlink()
    fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    for name, action in wanted.items():
        arm(str(name), str(action))


def arm_next_start(data_dir: Path, name: str, action: str) -> None:
    """Arms a point for the node's next start (restore.* fire only then)."""
    _check_point(name)
    parse_action(action)
    path = data_dir / NEXT_START
    wanted: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError):
        wanted = json.loads(path.read_text())
    wanted[name] = action
    path.write_text(json.dumps(wanted, sort_keys=True))


def _fire(name: str) -> float:
    """Counts a hit of an armed point and does its action; returns seconds to sleep (0.0 if none)."""
    with _lock:
        act = _ARMED.get(name)
        if act is None:
            return 0.0
        _HITS[name] = _HITS.get(name, 0) + 1
        if act.times is not None:
            if act.times <= 1:
                del _ARMED[name]
            else:
                _ARMED[name] = Action(kind=act.kind, ms=act.ms, times=act.times - 1)
    if act.kind == "crash":
        # Straight to stdout, not through logging's handlers: the line must be out
        # before _exit, and nothing else may run (no atexit, no buffered flush).
        sys.stdout.write(f"failpoint {name} fired: crash (exit {CRASH_EXIT})\n")
        sys.stdout.flush()
        os._exit(CRASH_EXIT)
    log.warning("failpoint %s fired: %s", name, act)
    if act.kind == "error":
        raise Fired(errno.EIO, f"failpoint {name}: injected I/O error")
    return act.ms / 1000


def hit(name: str) -> None:
    """A failpoint on a thread (I/O, writer, start-up): sleeps there when armed so."""
    if name in _ARMED:
        delay = _fire(name)
        if delay:
            time.sleep(delay)


async def ahit(name: str) -> None:
    """A failpoint on the event loop: a sleep here suspends only the coroutine."""
    if name in _ARMED:
        delay = _fire(name)
        if delay:
            await asyncio.sleep(delay)
