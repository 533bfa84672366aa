"""Offline tools on a node's data directory.

``python -m squall.systems.aurora.store.tools digest DATA_DIR`` restores a copy of the data dir in
this process (the newest snapshot, then the log up to the last index the node
recorded as applied) and prints ``{"index", "digest"}``. It works on a
temporary copy, so the directory it is given is never changed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from .fsutil import DamagedData
from .statemachine import digest_of
from .store import open_state


def offline_digest(data_dir: Path) -> dict[str, object]:
    if not (data_dir / "raft.log").exists():
        raise FileNotFoundError(f"{data_dir} holds no raft.log: is it a node's data dir?")
    with tempfile.TemporaryDirectory(prefix="squall-digest-") as tmp:
        copy = Path(tmp) / "data"
        shutil.copytree(data_dir, copy, ignore=shutil.ignore_patterns("state.db*"))
        wal, sm, _, _ = open_state(copy, digest_every=0, lossy=False, fsync=False)
        try:
            assert sm.conn is not None
            return {"index": sm.applied_index, "digest": digest_of(sm.conn)}
        finally:
            sm.close()
            wal.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m squall.systems.aurora.store.tools")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("digest", help="restore a data dir offline and print its state digest")
    d.add_argument("data_dir", type=Path)
    a = p.parse_args(argv)
    try:
        print(json.dumps(offline_digest(a.data_dir)))
    except (DamagedData, FileNotFoundError) as e:
        print(f"cannot restore {a.data_dir}: {e}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
