"""lazyfs: stallfs with a power switch — on a cut, whatever was not fsynced is lost.

Runs inside a node container exactly like ``stallfs.py`` (same arguments,
same control directory, so the disk-stall modes keep working)::

    python3 lazyfs.py --mount /var/lib/squall --control /run/squall-stallfs -- CMD...

A process kill leaves the kernel's page cache intact, so a store that never
fsyncs survives it. Jepsen shows such bugs with LazyFS (a FUSE filesystem
that keeps unsynced writes in memory and drops them on a "crash"); this is
the same idea on top of the stallfs passthrough: every write still goes to
the directory underneath, and this layer only *remembers what is durable*,
so a cut can roll the directory back to it.

The durability model is ext4's (data=ordered, delayed allocation), reduced
to the operations this store uses, and never kinder than ext4:

* **file data**: a file's durable size is its size when it was last fsynced
  or fdatasynced; 0 if it was created since the mount and never synced. A
  truncate lowers it at once (the store only cuts a log suffix it is about
  to rewrite). Bytes past the durable size are lost; overwrites *inside* it
  are not modelled — the store only appends or replaces whole files (write,
  fsync, rename), and rebuilds its SQLite files at every start.
* **names** (create, mkdir, rename, unlink, rmdir) are journaled: any fsync,
  fdatasync or fsyncdir commits the journal, making *every* name change so
  far durable (ext4 has one running transaction; fsync commits it). A file
  renamed into place but never fsynced thus comes back zero-length, ext4's
  well-known outcome; a store that never fsyncs anything loses every name
  made since the mount. A replaced or unlinked file still named in the last
  commit is hard-linked into a hidden attic first, so a cut can put it back.
* what was in the directory at mount time is durable (a restart follows a
  cut, which already rolled the disk back) — unless ``<control>/wipe``
  exists: then the directory is emptied first (the nemesis's stand-in for
  an operator who rejoins a node whose data it refuses to start on).

The cut (``echo cut > <control>/power``) is atomic from the node's view:
new calls are held, calls already inside drain, the directory is rolled
back, and ``<control>/power-state`` reports ``cut {json of what was
dropped}``. From then on every call fails with EIO — a dead disk — until
the nemesis SIGKILLs the container: the node can neither read the rolled-
back files nor make anything durable. (Holding calls until the kill is not
an option: the kernel cannot interrupt a request the daemon has already
taken, even for SIGKILL, so the node would hang as an unkillable zombie.)
Standard library plus mfusepy, like stallfs.
"""

from __future__ import annotations

import argparse
import errno
import functools
import json
import os
import shutil
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:  # in the container this file sits beside stallfs.py
    import stallfs  # type: ignore[import-not-found]
except ImportError:  # on the host: the nemesis package
    from squall.nemesis import stallfs

ATTIC = ".squall-lazyfs-attic"
WIPE = "wipe"  # a control file: empty the data dir before mounting
DRAIN_S = 5.0  # how long a cut waits for calls already inside the filesystem


class LazyFS(stallfs.StallFS):  # type: ignore[misc]
    def __init__(self, root_fd: int, control: Path) -> None:
        super().__init__(root_fd, control)
        self.power = threading.Condition()
        self.cut = False  # the power is off: every call fails with EIO
        self.cutting = False  # the rollback runs: every call waits
        self.inflight = 0
        self.names = threading.RLock()  # name changes vs. journal commits and the cut
        self.durable: dict[int, int] = {}  # inode -> durable bytes
        self.committed: dict[str, tuple[int, bool]] = {}  # path -> (inode, is a dir)
        if (control / WIPE).exists():
            self._wipe()
        self._boot()
        self._report("on")  # the nemesis waits for this before it asks for a cut
        threading.Thread(target=self.watch_power, name="lazyfs-power", daemon=True).start()

    # -- state ----------------------------------------------------------
    def _boot(self) -> None:
        # An attic left by a plain kill (no cut) is stale: the page cache survived.
        self._clear_attic()
        live = self.walk()
        self.durable = {ino: size for ino, is_dir, size in live.values() if not is_dir}
        self.committed = {rel: (ino, is_dir) for rel, (ino, is_dir, _) in live.items()}

    def _wipe(self) -> None:
        """Empties the data dir, as an operator rejoining a damaged node does (the nemesis asks)."""
        for name in os.listdir(self.root):
            if os.path.isdir(f"/proc/self/fd/{self.root}/{name}"):
                shutil.rmtree(name, dir_fd=self.root)
            else:
                os.unlink(name, dir_fd=self.root)
        (self.control / WIPE).unlink()

    def walk(self) -> dict[str, tuple[int, bool, int]]:
        """Every name under the root (attic excluded): path -> (inode, is a dir, size)."""
        out: dict[str, tuple[int, bool, int]] = {}
        todo = ["."]
        while todo:
            d = todo.pop()
            fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY, dir_fd=self.root)
            try:
                names = os.listdir(fd)
            finally:
                os.close(fd)
            for name in names:
                if d == "." and name == ATTIC:
                    continue
                rel = name if d == "." else f"{d}/{name}"
                try:
                    st = os.stat(rel, dir_fd=self.root, follow_symlinks=False)
                except FileNotFoundError:  # removed by a call that takes no lock (a race)
                    continue
                is_dir = stat.S_ISDIR(st.st_mode)
                out[rel] = (st.st_ino, is_dir, st.st_size)
                if is_dir:
                    todo.append(rel)
        return out

    def commit(self) -> None:
        """The journal commit an fsync forces: every name as it is now becomes durable."""
        with self.names:
            self.committed = {rel: (ino, d) for rel, (ino, d, _) in self.walk().items()}
            keep = {str(ino) for ino, d in self.committed.values() if not d}
            for name in self._attic():
                if name not in keep:
                    os.unlink(f"{ATTIC}/{name}", dir_fd=self.root)

    def _attic(self) -> list[str]:
        try:
            fd = os.open(ATTIC, os.O_RDONLY | os.O_DIRECTORY, dir_fd=self.root)
        except FileNotFoundError:
            return []
        try:
            return os.listdir(fd)
        finally:
            os.close(fd)

    def _clear_attic(self) -> None:
        for name in self._attic():
            os.unlink(f"{ATTIC}/{name}", dir_fd=self.root)
        if os.path.lexists(f"/proc/self/fd/{self.root}/{ATTIC}"):
            os.rmdir(ATTIC, dir_fd=self.root)

    def protect(self, path: str) -> None:
        """Keeps the inode at ``path`` if the last commit names it and it is about to go."""
        rel = self.rel(path)
        try:
            st = os.stat(rel, dir_fd=self.root, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode) or (st.st_ino, False) not in self.committed.values():
            return
        os.makedirs(f"/proc/self/fd/{self.root}/{ATTIC}", exist_ok=True)
        if not os.path.lexists(f"/proc/self/fd/{self.root}/{ATTIC}/{st.st_ino}"):
            os.link(rel, f"{ATTIC}/{st.st_ino}", src_dir_fd=self.root, dst_dir_fd=self.root)

    def _size_of(self, path: str, fh: int | None) -> tuple[int, int]:
        st = os.fstat(fh) if fh is not None else os.stat(self.rel(path), dir_fd=self.root)
        return st.st_ino, st.st_size

    # -- the power switch --------------------------------------------------
    def watch_power(self) -> None:
        while not self.cut:
            try:
                wanted = (self.control / "power").read_text().split()
            except OSError:
                wanted = []
            if wanted[:1] == ["cut"]:
                # The request's token is echoed, so the nemesis never takes a
                # previous incarnation's report for this cut.
                token = " ".join(wanted[1:2])
                self._report(f"cut {token} " + json.dumps(self.power_cut(), sort_keys=True))
                return
            self.tick.wait(stallfs.WATCH_EVERY)

    def _report(self, state: str) -> None:
        tmp = self.control / "power-state.tmp"
        tmp.write_text(state + "\n")
        tmp.replace(self.control / "power-state")

    def power_cut(self) -> dict[str, Any]:
        """Holds every call, lets those inside finish, rolls the disk back to what is durable."""
        with self.power:
            self.cut = self.cutting = True
            drained = self.power.wait_for(lambda: self.inflight == 0, DRAIN_S)
            stuck = self.inflight
        try:
            with self.names:
                result = self.rollback()
        finally:
            with self.power:
                self.cutting = False
                self.power.notify_all()
        result["calls_still_inside"] = 0 if drained else stuck
        return result

    def enter(self) -> None:
        with self.power:
            self.power.wait_for(lambda: not self.cutting)
            if self.cut:
                # A dead disk, not a held call: a request the daemon holds cannot be
                # interrupted, even by SIGKILL (the kernel waits for its answer), so
                # the node would become an unkillable zombie.
                raise stallfs.mfusepy.FuseOSError(errno.EIO)
            self.inflight += 1

    def leave(self) -> None:
        with self.power:
            self.inflight -= 1
            self.power.notify_all()

    def rollback(self) -> dict[str, Any]:
        live = self.walk()
        attic = set(self._attic())
        # 1. Keep every inode the commit names, so renames and swaps can be undone.
        for rel, (ino, is_dir, _) in live.items():
            if not is_dir and (ino, False) in self.committed.values() and str(ino) not in attic:
                self.protect(rel)
                attic.add(str(ino))
        lost_names, dropped, truncated = [], 0, []
        # 2. Drop every name the commit does not have (deepest first), or that names another inode.
        for rel in sorted(live, key=lambda r: r.count("/"), reverse=True):
            ino, is_dir, _ = live[rel]
            if self.committed.get(rel) != (ino, is_dir):
                (os.rmdir if is_dir else os.unlink)(rel, dir_fd=self.root)
                lost_names.append(rel)
        # 3. Put back the committed names (parents first), each at its durable size.
        for rel, (ino, is_dir) in sorted(self.committed.items(), key=lambda kv: kv[0].count("/")):
            if rel in live and live[rel][:2] == (ino, is_dir):
                pass  # kept by step 2
            elif is_dir:
                os.mkdir(rel, dir_fd=self.root)
            else:
                os.link(f"{ATTIC}/{ino}", rel, src_dir_fd=self.root, dst_dir_fd=self.root)
            if not is_dir:
                size, keep = os.stat(rel, dir_fd=self.root).st_size, self.durable.get(ino, 0)
                if size > keep:
                    os.truncate(f"/proc/self/fd/{self.root}/{rel}", keep)
                    dropped += size - keep
                    truncated.append(rel)
        self._clear_attic()
        return {
            "names_dropped": sorted(lost_names),
            "files_truncated": sorted(truncated),
            "bytes_dropped": dropped,
            "files_kept": sum(not d for _, d in self.committed.values()),
        }

    # -- the durability bookkeeping on top of the passthrough ---------------
    def create(self, path: str, mode: int, flags: int) -> int:
        with self.names:
            fh = super().create(path, mode, flags)
            self.durable[os.fstat(fh).st_ino] = 0  # a new inode, or O_TRUNC: nothing synced yet
            return fh

    def open(self, path: str, flags: int) -> int:
        fh = super().open(path, flags)
        if flags & os.O_TRUNC:
            self.durable[os.fstat(fh).st_ino] = 0
        return fh

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        super().truncate(path, length, fh)
        ino, _ = self._size_of(path, fh)
        self.durable[ino] = min(self.durable.get(ino, 0), length)
        return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        ino, size = self._size_of(
            path, fh
        )  # what is in the file before the sync is durable after it
        super().fsync(path, datasync, fh)
        self.durable[ino] = min(size, os.fstat(fh).st_size)
        self.commit()
        return 0

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        super().fsyncdir(path, datasync, fh)
        self.commit()
        return 0

    def unlink(self, path: str) -> int:
        with self.names:
            self.protect(path)
            return int(super().unlink(path))

    def rename(self, old: str, new: str) -> int:
        with self.names:
            self.protect(new)
            return int(super().rename(old, new))

    def mkdir(self, path: str, mode: int) -> int:
        with self.names:
            return int(super().mkdir(path, mode))

    def rmdir(self, path: str) -> int:
        with self.names:
            return int(super().rmdir(path))

    def readdir(self, path: str, fh: int) -> list[str]:
        names: list[str] = super().readdir(path, fh)
        return [n for n in names if not (self.rel(path) == "." and n == ATTIC)]


def _held(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)  # keeps the signature mfusepy inspects (create)
    def run(self: LazyFS, *args: Any) -> Any:
        self.enter()
        try:
            return method(self, *args)
        finally:
            self.leave()

    return run


# Every call that reads or changes the disk waits while the power is cut;
# release stays free so dying processes can close their files.
for _name in (
    "getattr",
    "readdir",
    "access",
    "readlink",
    "statfs",
    "open",
    "read",
    "create",
    "write",
    "truncate",
    "fsync",
    "fsyncdir",
    "unlink",
    "rmdir",
    "mkdir",
    "rename",
    "link",
    "symlink",
    "chmod",
    "chown",
    "utimens",
):
    setattr(LazyFS, _name, _held(getattr(LazyFS, _name)))


def main() -> None:
    # First thing, before the mount: a restarted container keeps its old control
    # files, and neither an old cut request nor an old report may count now.
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--control", required=True)
    control = Path(ap.parse_known_args()[0].control)
    control.mkdir(parents=True, exist_ok=True)
    (control / "power").write_text("on\n")
    (control / "power-state").unlink(missing_ok=True)
    # stallfs's main mounts whatever class its module calls StallFS: point it here.
    stallfs.StallFS = LazyFS
    stallfs.main()


if __name__ == "__main__":
    main()
