"""stallfs: a FUSE passthrough over a node's data directory that can stall.

Runs *inside* a node container as a command prefix::

    python3 stallfs.py --mount /var/lib/squall --control /run/squall-stallfs -- CMD...

It opens the data directory, mounts itself over that same path (every file
operation is passed through to the directory underneath via the fd opened
before the mount), forks the FUSE loop into a child, waits for the mount to
appear, and execs CMD, so the node keeps running as the container's PID 1.

The mode is read from ``<control>/mode`` by a watcher thread (signal
handlers cannot be used: Python runs them only on the main thread, which
sits inside the FUSE loop):

* ``pass``  — plain passthrough;
* ``stall`` — writes, fsyncs and metadata changes block (not fail) until the
  mode changes; reads go on, like a disk whose write queue is stuck;
* ``eio``   — fsync (and fdatasync) fail with EIO, and the file loses what
  was written since its last good fsync (it is cut back to that size), as
  Linux may do: after a failed write-back the dirty pages are dropped and the
  error cleared, so a store that retries the fsync sees it succeed without
  the bytes (PostgreSQL's "fsyncgate"). A store that forgives the failure
  has a hole in its log; one that stops re-reads what the disk holds.
* ``enospc`` — the disk is full: writes and file creation fail with ENOSPC
  (reads, fsyncs, renames and deletions go on), until the mode changes.

``<control>/state`` echoes the mode in effect and how many calls are blocked
now, so the nemesis can wait for the mode to hold instead of sleeping.
Standard library plus mfusepy (mounted next to this file by the nemesis).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import mfusepy  # type: ignore[import-not-found]

MODES = ("pass", "stall", "eio", "enospc")
WATCH_EVERY = 0.02


class StallFS(mfusepy.Operations):  # type: ignore[misc]
    use_ns = True

    def __init__(self, root_fd: int, control: Path) -> None:
        self.root = root_fd
        self.control = control
        self.mode = "pass"
        self.blocked = 0
        self.cond = threading.Condition()
        self.tick = threading.Event()
        # inode -> its size after its last good fsync (a file found at mount counts
        # as synced at the size it had when first opened): what an eio fsync keeps.
        self.synced: dict[int, int] = {}

    # -- control --------------------------------------------------------
    def watch(self) -> None:
        last = ""
        while True:
            try:
                mode = (self.control / "mode").read_text().strip() or "pass"
            except OSError:
                mode = "pass"
            if mode not in MODES:
                mode = "pass"
            with self.cond:
                self.mode = mode
                self.cond.notify_all()
                state = f"{mode} {self.blocked}\n"
            if state != last:
                tmp = self.control / "state.tmp"
                tmp.write_text(state)
                tmp.replace(self.control / "state")
                last = state
            # Event.wait, not time.sleep: Python 3.11's sleep failed with EINVAL
            # under a preloaded clock faker that kept the monotonic clock real.
            self.tick.wait(WATCH_EVERY)

    def gate(self, fsync: bool = False, grows: bool = False) -> None:
        with self.cond:
            if self.mode == "stall":
                self.blocked += 1
                try:
                    while self.mode == "stall":
                        self.cond.wait()
                finally:
                    self.blocked -= 1
            if fsync and self.mode == "eio":
                raise mfusepy.FuseOSError(errno.EIO)
            if grows and self.mode == "enospc":
                raise mfusepy.FuseOSError(errno.ENOSPC)

    # -- helpers ----------------------------------------------------------
    @staticmethod
    def rel(path: str) -> str:
        return path.lstrip("/") or "."

    # -- reads --------------------------------------------------------------
    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        st = (
            os.fstat(fh)
            if fh is not None
            else os.stat(self.rel(path), dir_fd=self.root, follow_symlinks=False)
        )
        out = {
            k: getattr(st, k)
            for k in ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_ino", "st_blocks")
        }
        out.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
        return out

    def readdir(self, path: str, fh: int) -> list[str]:
        fd = os.open(self.rel(path), os.O_RDONLY | os.O_DIRECTORY, dir_fd=self.root)
        try:
            return [".", "..", *os.listdir(fd)]
        finally:
            os.close(fd)

    def access(self, path: str, amode: int) -> int:
        if not os.access(self.rel(path), amode, dir_fd=self.root):
            raise mfusepy.FuseOSError(errno.EACCES)
        return 0

    def readlink(self, path: str) -> str:
        return os.readlink(self.rel(path), dir_fd=self.root)

    def statfs(self, path: str) -> dict[str, int]:
        st = os.statvfs(self.root)
        return {
            k: getattr(st, k)
            for k in (
                "f_bavail",
                "f_bfree",
                "f_blocks",
                "f_bsize",
                "f_favail",
                "f_ffree",
                "f_files",
                "f_flag",
                "f_frsize",
                "f_namemax",
            )
        }

    def open(self, path: str, flags: int) -> int:
        if flags & os.O_TRUNC:
            self.gate()
        fh = os.open(self.rel(path), flags & ~os.O_CREAT, dir_fd=self.root)
        st = os.fstat(fh)
        self.synced.setdefault(st.st_ino, 0 if flags & os.O_TRUNC else st.st_size)
        return fh

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    def release(self, path: str, fh: int) -> int:
        os.close(fh)
        return 0

    def flush(self, path: str, fh: int) -> int:
        return 0

    # -- writes (gated) -----------------------------------------------------
    def create(self, path: str, mode: int, flags: int) -> int:
        self.gate(grows=True)
        fh = os.open(self.rel(path), flags | os.O_CREAT, mode, dir_fd=self.root)
        st = os.fstat(fh)
        if flags & os.O_TRUNC or st.st_size == 0:
            self.synced[st.st_ino] = 0
        else:
            self.synced.setdefault(st.st_ino, st.st_size)
        return fh

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        self.gate(grows=True)
        return os.pwrite(fh, data, offset)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        self.gate()
        if fh is not None:
            os.ftruncate(fh, length)
            self._cut_synced(fh, length)
            return 0
        fd = os.open(self.rel(path), os.O_WRONLY, dir_fd=self.root)
        try:
            os.ftruncate(fd, length)
            self._cut_synced(fd, length)
        finally:
            os.close(fd)
        return 0

    def _cut_synced(self, fd: int, length: int) -> None:
        ino = os.fstat(fd).st_ino
        self.synced[ino] = min(self.synced.get(ino, length), length)

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        st = os.fstat(fh)
        try:
            self.gate(fsync=True)
        except mfusepy.FuseOSError:
            keep = self.synced.get(st.st_ino, st.st_size)
            if st.st_size > keep:  # the write-back failed: the unsynced tail is gone
                os.ftruncate(fh, keep)
            raise
        (os.fdatasync if datasync else os.fsync)(fh)
        self.synced[st.st_ino] = st.st_size
        return 0

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        self.gate(fsync=True)
        fd = os.open(self.rel(path), os.O_RDONLY | os.O_DIRECTORY, dir_fd=self.root)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return 0

    def unlink(self, path: str) -> int:
        self.gate()
        os.unlink(self.rel(path), dir_fd=self.root)
        return 0

    def rmdir(self, path: str) -> int:
        self.gate()
        os.rmdir(self.rel(path), dir_fd=self.root)
        return 0

    def mkdir(self, path: str, mode: int) -> int:
        self.gate()
        os.mkdir(self.rel(path), mode, dir_fd=self.root)
        return 0

    def rename(self, old: str, new: str) -> int:
        self.gate()
        os.rename(self.rel(old), self.rel(new), src_dir_fd=self.root, dst_dir_fd=self.root)
        return 0

    def link(self, target: str, source: str) -> int:
        self.gate()
        os.link(self.rel(source), self.rel(target), src_dir_fd=self.root, dst_dir_fd=self.root)
        return 0

    def symlink(self, target: str, source: str) -> int:
        self.gate()
        os.symlink(source, self.rel(target), dir_fd=self.root)
        return 0

    def chmod(self, path: str, mode: int) -> int:
        self.gate()
        os.chmod(self.rel(path), mode, dir_fd=self.root)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        self.gate()
        os.chown(self.rel(path), uid, gid, dir_fd=self.root, follow_symlinks=False)
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        self.gate()
        os.utime(self.rel(path), ns=times, dir_fd=self.root) if times else os.utime(
            self.rel(path), dir_fd=self.root
        )
        return 0


def mounted(path: str) -> bool:
    with open("/proc/self/mounts") as fh:
        return any(line.split()[1] == path and "fuse" in line.split()[2] for line in fh)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mount", required=True)
    ap.add_argument("--control", required=True)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    mount = os.path.abspath(args.mount)
    control = Path(args.control)
    control.mkdir(parents=True, exist_ok=True)
    # A restarted container keeps its old control files: start honest.
    (control / "mode").write_text("pass\n")
    (control / "state").unlink(missing_ok=True)
    os.makedirs(mount, exist_ok=True)
    if mounted(mount):  # the previous incarnation's mount died with it; never stack
        os.system(f"fusermount3 -uz {mount} 2>/dev/null || umount -l {mount}")
    root = os.open(mount, os.O_RDONLY | os.O_DIRECTORY)
    pid = os.fork()
    if pid == 0:
        fs = StallFS(root, control)
        threading.Thread(target=fs.watch, name="stallfs-control", daemon=True).start()
        mfusepy.FUSE(fs, mount, foreground=True, nothreads=False, fsname="squall-stallfs")
        os._exit(0)
    deadline = time.monotonic() + 15
    while not mounted(mount) or not (control / "state").exists():
        if time.monotonic() > deadline:
            sys.exit(
                f"stallfs: {mount} was not mounted within 15 s; does the container have "
                "--device /dev/fuse and --cap-add SYS_ADMIN?"
            )
        threading.Event().wait(0.02)
    os.close(root)
    if cmd:
        os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main()
