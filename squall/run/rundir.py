"""The store of results: ``store/<test-name>/<timestamp>/`` with ``store/latest``.

A run directory is self-contained — a person can attach it to a bug report:
``test.yaml`` (resolved config, seed), ``history.jsonl``, ``results.json``,
``results.xml``, ``report.html``, plots, ``nemesis-timeline.yaml`` and
``nodes/<node>/`` (logs, final status, digests).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def new_run_dir(store: str | Path, name: str) -> Path:
    base = Path(store) / name
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime())
    run = base / stamp
    n = 1
    while run.exists():
        n += 1
        run = base / f"{stamp}-{n}"
    run.mkdir(parents=True)
    _link(Path(store) / "latest", run)
    _link(base / "latest", run)
    return run


def _link(link: Path, target: Path) -> None:
    tmp = link.with_name(link.name + ".tmp")
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(os.path.relpath(target, link.parent))
        tmp.replace(link)
    except OSError:
        pass  # a store on a filesystem without symlinks still works; only `latest` is missing


def resolve_run_dir(path: str | Path) -> Path:
    """Accepts a run directory, ``store/latest`` or a test directory (its newest run)."""
    p = Path(path)
    if (p / "history.jsonl").exists() or (p / "test.yaml").exists():
        return p.resolve()
    if (p / "latest").exists():
        return (p / "latest").resolve()
    raise FileNotFoundError(f"{p} is not a run directory (no history.jsonl or test.yaml in it)")


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)


def list_runs(store: str | Path) -> list[Path]:
    root = Path(store)
    if not root.is_dir():
        return []
    runs = [p.parent for p in root.glob("*/*/test.yaml") if not p.parent.is_symlink()]
    return sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)
