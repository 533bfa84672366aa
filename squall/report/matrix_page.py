"""The proof matrix as a page: one row a case, linked to that run's report.

Written beside the summary JSON (``store/matrix/<time>.html``) so the nightly
result is something a person opens, not only a table in a CI log. Links are
relative, so the store can be moved or served (``squall serve``) as a whole.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from squall.report.run_page import CSS, _badge, _e


def _expected(value: Any) -> str:
    return (
        {True: "valid", False: "invalid"}.get(value, str(value))
        if isinstance(value, bool)
        else str(value)
    )


def _row(row: Mapping[str, Any], here: Path) -> str:
    mark = "✔" if row["passed"] else "✘"
    run_dir = row.get("run_dir") or "-"
    report = Path(run_dir) / "report.html"
    link = (
        f"<a href='{_e(os.path.relpath(report, here))}'>{_e(row['case'])}</a>"
        if run_dir != "-"
        else _e(row["case"])
    )
    det = f"{row['detection_s']:.1f}s" if isinstance(row.get("detection_s"), int | float) else "-"
    figs = " ".join(f"{k}={v}" for k, v in (row.get("figures") or {}).items()) or ""
    got = (
        _badge(row["got"])
        if isinstance(row["got"], bool) or row["got"] == "unknown"
        else _e(row["got"])
    )
    return (
        f"<tr><td>{mark} {link}</td><td>{_e(_expected(row['expected']))}</td><td>{got}</td>"
        f"<td>{_e(','.join(row['caught_by']) or '-')}</td><td>{det}</td>"
        f"<td>{row['seconds']:.0f}s</td><td>{_e(row.get('seed'))}</td><td>{_e(figs)}</td>"
        f"<td>{_e(row.get('evidence') or '')}</td></tr>"
    )


def render(summary: Mapping[str, Any], here: Path) -> str:
    ok = summary["passed"] == summary["cases"]
    colour = "#1a7f37" if ok else "#cf222e"
    head = f"{summary['passed']} of {summary['cases']} cases as expected" + (
        "" if ok else ": the matrix failed"
    )
    if summary.get("interrupted"):
        colour = "#9a6700"
        head += f" (interrupted: {summary['cases']} of {summary.get('of', '?')} cases run)"
    rows = "".join(_row(r, here) for r in summary["rows"])
    return "\n".join(
        [
            f"<!doctype html><html><head><meta charset='utf-8'><title>squall matrix: {_e(head)}</title>"
            f"<style>{CSS}</style></head><body>",
            f"<h1>squall matrix</h1><div class='muted'>{_e(summary.get('suite'))} · "
            f"seed {_e(summary.get('seed'))}</div>",
            f"<div class='verdict' style='background:{colour}'>{_e(head)}</div>",
            "<table><tr><th>case</th><th>expected</th><th>got</th><th>caught by</th>"
            "<th>detected at</th><th>took</th><th>seed</th><th>figures</th><th>why</th></tr>",
            rows,
            "</table>",
            "<h2>Summary (JSON)</h2><pre>"
            + _e(json.dumps(summary, indent=1, default=str))
            + "</pre>",
            "</body></html>",
        ]
    )


def write_matrix_html(summary: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(summary, path.parent), encoding="utf-8")
    return path
