"""What the ssh backend runs on a host, as root: ``python3 - COMMAND JSON`` with this file on stdin.

Standard library only, and never stored on the host: each call pipes this
file to the host's python3, so a host keeps nothing of Squall's but a run's
own directory. Every change is written to the run's ``manifest.json``
*before* it is made (a write-ahead record), so ``clean`` can undo a run
whose runner died at any instant: its processes (found by the
``SQUALL_RUN=<run>`` mark in their environment, FUSE daemons included), its
mounts (anything mounted under the run directory), its iptables chains and
the jumps to them, the links it made for the system's mounts, the scratch
paths faults declared, and finally the run directory itself.

Each command prints one JSON line. Kept to what must happen on the host in
one step; partition rules come from ``squall.cluster.net`` on the control side.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

MARK = "SQUALL_RUN"


def manifest_path(rdir: Path) -> Path:
    return rdir / "manifest.json"


def read_manifest(rdir: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(manifest_path(rdir).read_text()))
    except (OSError, ValueError):
        return {}


def write_manifest(rdir: Path, m: dict[str, Any]) -> None:
    tmp = rdir / "manifest.json.tmp"
    with open(tmp, "w") as f:
        json.dump(m, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, manifest_path(rdir))


def record(rdir: Path, key: str, values: list[str]) -> None:
    m = read_manifest(rdir)
    m[key] = sorted({*m.get(key, []), *values})
    write_manifest(rdir, m)


def iptables(*args: str) -> int:
    return subprocess.run(["iptables", "-w", *args], capture_output=True).returncode


# -- processes ---------------------------------------------------------------------
def marked(run: str) -> list[int]:
    """Every live process carrying this run's mark in its environment."""
    want = f"{MARK}={run}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if want in env and state != "Z":
            found.append(int(entry.name))
    return sorted(found)


def state_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def node_pid(rdir: Path) -> int:
    """The node's pid while that very process lives (its start time is checked: pids recycle)."""
    m = read_manifest(rdir)
    pid, started = int(m.get("pid") or 0), m.get("starttime")
    if pid <= 0 or state_of(pid) in ("", "Z"):
        return 0
    try:
        now = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return 0
    return pid if now == started else 0


def kill_all(run: str, rdir: Path, timeout: float = 15.0) -> list[int]:
    """SIGKILLs the node's session and every marked process, then waits until none is left."""
    pid = node_pid(rdir)
    if pid:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    killed: set[int] = set()
    while True:
        left = marked(run)
        if not left or time.monotonic() > deadline:
            break
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
                killed.add(p)
            except OSError:
                pass
        time.sleep(0.02)
    unmount_under(rdir)
    return sorted(killed | ({pid} if pid else set()))


def _unescape(path: str) -> str:
    return path.encode().decode("unicode_escape") if "\\" in path else path


def mounts_under(rdir: Path) -> list[str]:
    out = []
    root = str(rdir)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape(line.split()[4])
        if point == root or point.startswith(root + "/"):
            out.append(point)
    return out


def unmount_under(rdir: Path) -> list[str]:
    """Lazily unmounts everything under the run directory, deepest first (a dead FUSE layer too)."""
    done = []
    for point in sorted(set(mounts_under(rdir)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
        done.append(point)
    return done


# -- commands ----------------------------------------------------------------------
def cmd_begin(rdir: Path, a: dict[str, Any]) -> dict[str, Any]:
    for sub in ("data", "etc", "mounts", "collect"):
        (rdir / sub).mkdir(parents=True, exist_ok=True)
    m = {**read_manifest(rdir), **a["manifest"], "chains": list(a["chains"].values())}
    write_manifest(rdir, m)
    uid, gid = int(a["uid"]), int(a["gid"])
    for p in (rdir, rdir / "etc", rdir / "mounts", rdir / "collect"):
        os.chown(p, uid, gid)  # the login user uploads and downloads these over SFTP
    os.chmod(rdir, 0o755)
    for hook, chain in a["chains"].items():
        iptables("-N", chain)
        if iptables("-C", hook, "-j", chain) != 0:
            iptables("-I", hook, "1", "-j", chain)
    return {"dir": str(rdir)}


def cmd_link(rdir: Path, a: dict[str, Any]) -> dict[str, Any]:
    """Makes each node path a symlink to its upload in the run directory (recorded first)."""
    links: dict[str, str] = a["links"]
    for dst in links:
        p = Path(dst)
        if (p.exists() or p.is_symlink()) and not _ours(p, rdir):
            return {"error": f"{dst} exists and is not Squall's; remove it or free the host"}
    made = []
    for dst in links:
        for parent in reversed(Path(dst).parents):
            if not parent.exists():
                made.append(str(parent))
    record(rdir, "made_dirs", made)
    record(rdir, "links", list(links))
    for dst, src in links.items():
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        if Path(dst).is_symlink():
            Path(dst).unlink()
        os.symlink(src, dst)
    return {"linked": sorted(links)}


def _ours(p: Path, rdir: Path) -> bool:
    return p.is_symlink() and os.readlink(p).startswith(str(rdir.parent) + "/")


def cmd_scratch(rdir: Path, a: dict[str, Any]) -> dict[str, Any]:
    record(rdir, "scratch", list(a["paths"]))
    return {}


def cmd_start(rdir: Path, a: dict[str, Any]) -> dict[str, Any]:
    if node_pid(rdir):
        return {"error": "the node is already running"}
    log_path = rdir / "node.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", **a["env"]}
    env[MARK] = a["run"]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            a["argv"],
            cwd=str(rdir),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session and group: a kill takes every child
        )
    starttime = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    m = read_manifest(rdir)
    m.update(pid=proc.pid, starttime=starttime)
    write_manifest(rdir, m)
    return {"pid": proc.pid, "log_offset": offset}


def cmd_kill(rdir: Path, a: dict[str, Any]) -> dict[str, Any]:
    return {"killed": kill_all(a["run"], rdir)}


def cmd_status(rdir: Path, a: dict[str, Any]) -> dict[str, Any]:
    pid = node_pid(rdir)
    return {"running": bool(pid), "stopped": bool(pid) and state_of(pid) == "T"}


def cmd_pack(rdir: Path, a: dict[str, Any]) -> dict[str, Any]:
    """Tars the data directory for SFTP, with the node frozen unless a fault already froze it."""
    pid = node_pid(rdir)
    freeze = bool(pid) and state_of(pid) != "T"
    out = rdir / "collect" / "data.tar"
    if freeze:
        os.kill(pid, signal.SIGSTOP)
    try:
        with tarfile.open(out, "w") as tar:
            tar.add(rdir / "data", arcname="data")
    finally:
        if freeze:
            os.kill(pid, signal.SIGCONT)
    os.chown(out, int(a["uid"]), int(a["gid"]))
    return {"path": str(out)}


def cmd_clean(rdir: Path, a: dict[str, Any]) -> dict[str, Any]:
    """Undoes everything the manifest says the run did, and removes the run directory."""
    m = read_manifest(rdir)
    done: dict[str, Any] = {"run": a["run"], "processes": kill_all(a["run"], rdir)}
    for chain in m.get("chains", []):
        for hook in ("INPUT", "OUTPUT"):
            while iptables("-D", hook, "-j", chain) == 0:
                pass
        iptables("-F", chain)
        iptables("-X", chain)
    done["chains"] = m.get("chains", [])
    for dst in m.get("links", []):
        if _ours(Path(dst), rdir):
            Path(dst).unlink()
    for d in sorted(m.get("made_dirs", []), key=len, reverse=True):
        try:
            os.rmdir(d)  # only if empty: never a directory someone else filled since
        except OSError:
            pass
    for p in m.get("scratch", []):
        path = Path(p)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()
    done["links"] = m.get("links", [])
    done["scratch"] = m.get("scratch", [])
    shutil.rmtree(rdir, ignore_errors=True)
    return done


def cmd_runs(base: Path, a: dict[str, Any]) -> dict[str, Any]:
    runs = base / "runs"
    found = {}
    if runs.is_dir():
        for rdir in sorted(runs.iterdir()):
            found[rdir.name] = read_manifest(rdir).get("owner") or {}
    return {"runs": found}


def cmd_leftovers(base: Path, a: dict[str, Any]) -> dict[str, Any]:
    """What of any run is still on this host: run dirs, marked processes, mounts, chains."""
    runs = sorted(p.name for p in (base / "runs").iterdir()) if (base / "runs").is_dir() else []
    procs = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                env = (entry / "environ").read_bytes()
            except OSError:
                continue
            if f"{MARK}=".encode() in env and state_of(int(entry.name)) not in ("", "Z"):
                procs.append(int(entry.name))
    rules = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True).stdout
    return {
        "runs": runs,
        "processes": sorted(procs),
        "mounts": mounts_under(base),
        "rules": [r for r in rules.splitlines() if "squall-" in r],
    }


RUN_COMMANDS = {
    "begin": cmd_begin,
    "link": cmd_link,
    "scratch": cmd_scratch,
    "start": cmd_start,
    "kill": cmd_kill,
    "status": cmd_status,
    "pack": cmd_pack,
    "clean": cmd_clean,
}
HOST_COMMANDS = {"runs": cmd_runs, "leftovers": cmd_leftovers}


def main(argv: list[str]) -> int:
    command, args = argv[1], json.loads(argv[2])
    base = Path(args["base"])
    if command in HOST_COMMANDS:
        out = HOST_COMMANDS[command](base, args)
    else:
        rdir = base / "runs" / args["run"]
        if command != "begin" and not rdir.is_dir():
            out = {"gone": True} if command in ("clean", "kill", "status") else {"error": "no run"}
        else:
            out = RUN_COMMANDS[command](rdir, args)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
