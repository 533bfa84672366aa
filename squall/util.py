"""Small helpers every layer shares, one copy each: a quantile, a bounded wait, free ports,
unpacking a directory a node sent as a tar archive.

A second copy of any of these drifts (the review found three quantiles with
two definitions), so there is exactly one here, on the ground floor.
"""

from __future__ import annotations

import os
import shutil
import socket
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import tenacity

T = TypeVar("T")


def quantile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile by nearest rank (no interpolation: always a value that was seen)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))
    return ordered[rank]


class WaitTimeout(TimeoutError):
    """A condition never came true within its bound; the message says what never happened."""


def wait_until(cond: Callable[[], T], timeout: float, what: str, every: float = 0.05) -> T:
    """Polls ``cond`` until it returns something truthy, and returns that.

    Raises WaitTimeout naming ``what`` when ``timeout`` seconds pass first.
    The one bounded wait of the suite (tenacity, as the house style asks).
    """
    retry = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda got: not got),
        stop=tenacity.stop_after_delay(timeout),
        wait=tenacity.wait_fixed(every),
        retry_error_callback=lambda _state: None,
    )
    got = retry(cond)
    if not got:
        raise WaitTimeout(f"{what} did not happen within {timeout:g}s")
    return got


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct TCP ports nobody listens on right now (held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


def unpack_dir(tar_path: Path, name: str, target: Path) -> None:
    """Unpacks directory ``name`` of a tar archive to ``target`` (replacing what was there).

    Extraction refuses absolute paths, ``..`` and devices: the archive came
    from a node, and a node under test is not trusted to write outside ``target``.
    """
    with tempfile.TemporaryDirectory(prefix="squall-unpack-", dir=target.parent) as tmp:
        with tarfile.open(tar_path) as tar:
            tar.extractall(tmp, filter="data")
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(str(Path(tmp) / name), str(target))


def write_private(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` readable and writable by its owner only (a secret)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT
