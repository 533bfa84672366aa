"""The counterexample as one self-contained HTML page (inline SVG, no scripts).

One lane per process, each operation a bar from its invoke to its
completion (an indeterminate one runs to the right edge, dashed). Colours:
green = in the longest linearizable prefix, orange = could not be linearized
after it, red = the operation whose completion the search could not get
past; the failing window is shaded red and fault windows are grey bands.
Hovering a bar shows the op, its lines and the model state after it.

Only the failing partition's window is drawn (see checkers.counterexample), so
the page stays small whatever the size of the history.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

LANE_H = 28
BAR_H = 18
LEFT = 110
WIDTH = 1200
TOP = 30
CHAR_W = 6.7  # px per character of the 11px monospace labels

_CSS = """
body{font-family:system-ui,sans-serif;margin:16px;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}
code{background:#f4f4f4;padding:1px 3px}.svgbox{overflow-x:auto;border:1px solid #ddd}
text{font-size:11px;font-family:monospace}
"""

_FILL = {"linearized": "#a5d6a7", "stuck": "#ffcc80", "blocking": "#ef9a9a", "other": "#e0e0e0"}


def _kind(op: dict[str, Any]) -> str:
    if op.get("blocking"):
        return "blocking"
    if op.get("stuck"):
        return "stuck"
    if op.get("linearized_at") is not None:
        return "linearized"
    return "other"


def _tooltip(op: dict[str, Any]) -> str:
    parts = [
        f"process {op['process']}: {op['desc']}",
        f"type {op['type']}, history index {op['invoke_index']}"
        + (f", line {op['line']}" if op.get("line") is not None else ""),
    ]
    if op.get("linearized_at") is not None:
        parts.append(f"linearized #{op['linearized_at'] + 1}, state after: {op['state_after']}")
    elif op.get("stuck"):
        parts.append("could not be linearized after the prefix")
    return "\n".join(parts)


def render_svg(ce: dict[str, Any], bands: list[dict[str, Any]]) -> str:
    ops = ce.get("window_ops", [])
    if not ops:
        return "<p>No operations to draw.</p>"
    procs = sorted({str(o["process"]) for o in ops}, key=lambda p: (len(p), p))
    lane = {p: i for i, p in enumerate(procs)}
    lo = min(o["call"] for o in ops) - 1
    hi = max([o["return"] for o in ops if o["return"] is not None] + [o["call"] for o in ops]) + 2
    scale = (WIDTH - LEFT - 20) / max(hi - lo, 1)

    def x(pos: float) -> float:
        return LEFT + (min(max(pos, lo), hi) - lo) * scale

    height = TOP + LANE_H * len(procs) + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}">']
    for b in bands:
        if b["end"] < lo or b["start"] > hi:
            continue
        x0, x1 = x(b["start"]), x(b["end"])
        out.append(
            f'<rect x="{x0:.1f}" y="{TOP - 12}" width="{max(x1 - x0, 2):.1f}" height="{height - TOP + 12}" '
            f'fill="#9e9e9e" fill-opacity="0.25"><title>{html.escape(b["fault"])}: '
            f"{html.escape(str(b.get('value')))}</title></rect>"
            f'<text x="{x0 + 2:.1f}" y="{TOP - 2}" fill="#555">{html.escape(b["fault"])}</text>'
        )
    stuck = [o for o in ops if o.get("stuck") or o.get("blocking")]
    if stuck:
        s0 = min(o["call"] for o in stuck)
        s1 = max((o["return"] if o["return"] is not None else hi) for o in stuck)
        out.append(
            f'<rect x="{x(s0) - 3:.1f}" y="{TOP - 4}" width="{x(s1) - x(s0) + 6:.1f}" '
            f'height="{height - TOP}" fill="#e53935" fill-opacity="0.08" stroke="#e53935" '
            'stroke-dasharray="4 3"><title>failing window</title></rect>'
        )
    for p in procs:
        y = TOP + lane[p] * LANE_H
        out.append(f'<text x="4" y="{y + 13}">process {html.escape(p)}</text>')
    room_to: dict[int, float] = {}
    by_lane: dict[str, list[dict[str, Any]]] = {}
    for o in ops:
        by_lane.setdefault(str(o["process"]), []).append(o)
    for lane_ops in by_lane.values():
        lane_ops.sort(key=lambda o: o["call"])
        for i, a in enumerate(lane_ops):
            room_to[id(a)] = x(lane_ops[i + 1]["call"]) if i + 1 < len(lane_ops) else WIDTH - 4
    for o in ops:
        y = TOP + lane[str(o["process"])] * LANE_H
        x0 = x(o["call"])
        x1 = x(o["return"]) if o["return"] is not None else x(hi)
        dash = ' stroke-dasharray="3 2"' if o["return"] is None else ""
        # Labels run to the next op in the lane and are cut there (the
        # tooltip has the whole text), so neighbours do not write over each other.
        room = int((room_to[id(o)] - x0 - 4) / CHAR_W)
        text = o["desc"] if len(o["desc"]) <= room else o["desc"][: max(room - 1, 0)] + "…"
        label = html.escape(text) if room >= 3 else ""
        out.append(
            f"<g><title>{html.escape(_tooltip(o))}</title>"
            f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 3):.1f}" height="{BAR_H}" rx="3" '
            f'fill="{_FILL[_kind(o)]}" stroke="#555"{dash}/>'
            f'<text x="{x0 + 3:.1f}" y="{y + 13}">{label}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)


def _key_phrase(key: Any) -> str:
    if key is None:
        return "The history (one partition)"
    return f"Key <code>{html.escape(json.dumps(key))}</code>"


def render(result: dict[str, Any], bands: list[dict[str, Any]] | None = None) -> str:
    """The whole page for a linearizability result (invalid ones have a counterexample)."""
    ce = result.get("counterexample") or {}
    rows = "".join(
        f"<tr><td>{html.escape(str(o['process']))}</td><td><code>{html.escape(o['desc'])}</code></td>"
        f"<td>{o['invoke_index']}</td><td>{'' if o.get('line') is None else o['line']}</td></tr>"
        for o in ce.get("unlinearizable", [])
    )
    prefix = "".join(
        f"<tr><td>{html.escape(str(o['process']))}</td><td><code>{html.escape(o['desc'])}</code></td>"
        f"<td><code>{html.escape(str(o['state_after']))}</code></td></tr>"
        for o in ce.get("prefix_tail", [])
    )
    summary = {k: v for k, v in result.items() if k not in ("counterexample",)}
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>linearizability: {html.escape(str(result.get("valid")))}</title><style>{_CSS}</style></head><body>
<h1>Linearizability: {html.escape(str(result.get("valid")))} ({html.escape(str(result.get("model")))})</h1>
<p>{_key_phrase(ce.get("key"))}: the search linearized
{ce.get("prefix_length", 0)} of the partition's {ce.get("partition_ops", 0)} operations; the model state
after them is <code>{html.escape(str(ce.get("state_desc")))}</code>, from which none of the operations
below can take effect before <code>{html.escape(str((ce.get("blocking") or {}).get("desc")))}</code>
(process {html.escape(str((ce.get("blocking") or {}).get("process")))}) completed.</p>
<div class="svgbox">{render_svg(ce, bands or [])}</div>
<h2>Could not be linearized</h2><table><tr><th>process</th><th>operation</th><th>history index</th><th>line</th></tr>{rows}</table>
<h2>End of the linearizable prefix</h2><table><tr><th>process</th><th>operation</th><th>state after</th></tr>{prefix}</table>
<h2>Summary</h2><pre>{html.escape(json.dumps(summary, indent=1, default=str))}</pre>
</body></html>"""


def write_html(
    path: str | os.PathLike[str], result: dict[str, Any], bands: list[dict[str, Any]] | None = None
) -> Path:
    p = Path(path)
    p.write_text(render(result, bands), encoding="utf-8")
    return p


def write_for_run(run_dir: Path, results: dict[str, Any], history: list[Any]) -> Path | None:
    """``linear.html`` in a run directory, when its linearizability checker found a violation.

    The checker's result carries the counterexample as data; this draws it,
    and records the page's path in that result (``html``).
    """
    from squall.checkers.counterexample import fault_bands

    res = results.get("linearizable")
    if not isinstance(res, dict) or res.get("valid") is not False or "counterexample" not in res:
        return None
    path = write_html(run_dir / "linear.html", res, fault_bands(history))
    res["html"] = str(path)
    return path
