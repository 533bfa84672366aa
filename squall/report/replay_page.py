"""A small page for ``squall run --replay RUN --repeat N``: how often a replay reproduced the run."""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def write_repeat_page(summary: Mapping[str, Any], path: Path) -> Path:
    def link(run_dir: str) -> str:
        rel = os.path.relpath(Path(run_dir) / "report.html", path.parent)
        return f"<a href='{html.escape(rel)}'>{html.escape(Path(run_dir).name)}</a>"

    anomaly = summary.get("anomaly") or {}
    what = (
        anomaly.get("checker", "") + (f" on a {anomaly['op']}" if anomaly.get("op") else "")
    ) or f"valid = {summary.get('original')}"
    rows = "".join(
        f"<tr><td>{i + 1}</td><td>{'✔' if r['reproduced'] else '✘'}</td>"
        f"<td>{html.escape(str(r['valid']))}</td><td>{link(r['run_dir'])}</td></tr>"
        for i, r in enumerate(summary.get("replays") or [])
    )
    path.write_text(
        f"""<!doctype html><html><head><meta charset="utf-8"><title>replays</title>
<style>body{{font:15px system-ui,sans-serif;margin:24px}}td,th{{border:1px solid #ccc;padding:3px 8px}}
table{{border-collapse:collapse}}</style></head><body>
<h1>Reproduced {summary.get("reproduced")} of {summary.get("of")} replays</h1>
<p>of {html.escape(str(summary.get("run_dir")))}: the same verdict and deciding checker
({html.escape(what)}), with the run's config, seed and fault timeline.</p>
<table><tr><th>#</th><th>same</th><th>valid</th><th>run</th></tr>{rows}</table></body></html>""",
        encoding="utf-8",
    )
    return path
