"""Whether the process that made something (a container, a Toxiproxy server) still lives.

A pid cannot say: the engine is shared by processes in other PID namespaces (CI
in a container with the Docker socket mounted), where the same number is
another process or none, so a sweep judging by pids could delete someone's
live run. Instead each process that makes anything holds an exclusive
``flock`` on a file of its own, ``<dir>/<token>.lock``, for its whole life;
the kernel releases it the moment the process dies, however it dies. What it
makes is labelled with the token, the identity of the lock directory and the
boot. A sweep then knows, without asking any pid:

* the boot differs: the machine restarted since, the owner is dead;
* the lock directory is this one and the lock can be taken: the owner is dead;
* the lock is held: the owner lives, whatever namespace it runs in;
* the lock directory is not ours to see (another container's /tmp): unknown,
  and what is unknown is left alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import threading
from pathlib import Path
from typing import Literal

LOCK_DIR = Path(os.environ.get("SQUALL_OWNER_DIR", "/tmp/squall-owners"))
TOKEN = "squall.owner"  # label: the owner's token
WHERE = "squall.owner_dir"  # label: device:inode of the lock directory
BOOT = "squall.boot"  # label: the kernel's boot id when the object was made
_TOKEN_OK = re.compile(r"^[0-9a-f]{32}$")

State = Literal["alive", "dead", "unknown"]

_mine: tuple[str, int] | None = None  # (token, fd holding the lock)
_lock = threading.Lock()


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _dir_identity(path: Path) -> str:
    st = path.stat()
    return f"{st.st_dev}:{st.st_ino}"


def token() -> str:
    """This process's token, its lock taken on first use and held until it exits."""
    global _mine
    with _lock:
        if _mine is None:
            LOCK_DIR.mkdir(parents=True, exist_ok=True, mode=0o1777)
            with contextlib.suppress(PermissionError):
                LOCK_DIR.chmod(0o1777)  # shared by every user of the machine, like /tmp
            mine = secrets.token_hex(16)
            fd = os.open(LOCK_DIR / f"{mine}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh file: never contended
            os.write(fd, f"{os.getpid()}\n".encode())  # for a person reading the directory
            _mine = (mine, fd)
        return _mine[0]


def labels() -> dict[str, str]:
    """What to label an object with so a sweep can tell whether its maker lives
    ({} where no lock can be kept: the sweep then falls back on the owner's pid)."""
    try:
        mine = token()
        return {TOKEN: mine, WHERE: _dir_identity(LOCK_DIR), BOOT: boot_id()}
    except OSError:
        return {}


def stamp() -> str:
    """The labels in one word, for a command line (``token/device:inode/boot``)."""
    mine = labels()
    return "/".join(mine.get(k, "") for k in (TOKEN, WHERE, BOOT))


def state_of_stamp(word: str) -> State:
    parts = (word.split("/") + ["", "", ""])[:3]
    return state(dict(zip((TOKEN, WHERE, BOOT), parts, strict=True)))


def state(labels: dict[str, str]) -> State:
    """Whether the maker of an object with these labels lives (see the module docstring)."""
    mine = labels.get(TOKEN, "")
    if not _TOKEN_OK.match(mine):
        return "unknown"
    if labels.get(BOOT) and boot_id() and labels[BOOT] != boot_id():
        return "dead"
    try:
        here = _dir_identity(LOCK_DIR)
    except OSError:
        return "unknown"
    if labels.get(WHERE) != here:
        return "unknown"  # made where our lock directory is not this one
    path = LOCK_DIR / f"{mine}.lock"
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return "dead"  # same directory, no lock: its owner died and was swept
    except OSError:
        return "unknown"
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return "alive"
    finally:
        os.close(fd)
    return "dead"


def forget(token_: str) -> None:
    """Removes a dead owner's lock file (once nothing labelled with it is left)."""
    if _TOKEN_OK.match(token_) and state({TOKEN: token_, WHERE: _safe_identity()}) == "dead":
        (LOCK_DIR / f"{token_}.lock").unlink(missing_ok=True)


def _safe_identity() -> str:
    try:
        return _dir_identity(LOCK_DIR)
    except OSError:
        return ""
