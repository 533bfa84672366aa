"""The counterexample as one self-contained, interactive HTML page (no network, one file).

What a person filing a consistency violation needs to see: a time axis; one
lane per process, each lane naming the nodes that served its operations;
each operation a bar from its invoke to its completion (an indeterminate one
runs to the right edge, dashed); the fault windows drawn across the lanes
(a partition by its sides, a kill or pause by its nodes); the longest
linearizable prefix (green), the operations that could not follow it
(orange) and the one whose completion the search could not get past (red).
Hover shows the op, the node that served it, its invoke and return times and
the model state before and after it; a click pins that; the mouse wheel
zooms the time axis and dragging pans it. Labels are cut to their bar (the
full text is in the tooltip).

Only the failing partition's window is drawn (``checkers.counterexample``
caps it at a few hundred operations) plus the faults that overlap it, so a
100k-op history gives a page of tens of kilobytes that opens at once (a
Porcupine user once met a 1.5 GB page for 3k operations). The data is one
JSON block; the drawing is a small inline script.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from squall.checkers.stats import fault_value
from squall.history import Op, fault_windows
from squall.report.evidence import describe_window

_CSS = """
body{font-family:system-ui,sans-serif;margin:16px;color:#222;max-width:1400px}
h1{font-size:20px;margin:0 0 6px}p.why{font-size:15px;margin:4px 0 12px}
table{border-collapse:collapse;font-size:13px;margin:6px 0 14px}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}
code{background:#f4f4f4;padding:1px 3px}
#box{position:relative;border:1px solid #ccc;overflow:hidden;user-select:none;cursor:grab}
#box.drag{cursor:grabbing}svg text{font:11px monospace}
#tip{position:fixed;display:none;background:#fffff2;border:1px solid #999;padding:6px 8px;
font:12px/1.35 monospace;white-space:pre;pointer-events:none;box-shadow:2px 2px 6px #0003;z-index:2}
#tip.pinned{border:2px solid #c62828;pointer-events:auto}
.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:14px;
height:10px;margin-right:4px;border:1px solid #888}.muted{color:#777}
button{font-size:12px;margin-left:8px}
"""

_SCRIPT = r"""
const D = JSON.parse(document.getElementById('data').textContent);
const FILL = {linearized:'#a5d6a7', stuck:'#ffcc80', blocking:'#ef9a9a', other:'#e0e0e0'};
const box = document.getElementById('box'), tip = document.getElementById('tip');
const LEFT = 150, LANE = 26, BAR = 18, TOP = 34, CH = 6.7;
const procs = [...new Set(D.ops.map(o => String(o.process)))].sort((a, b) =>
  (isNaN(a) || isNaN(b)) ? a.localeCompare(b) : a - b);
const nodesOf = p => [...new Set(D.ops.filter(o => String(o.process) === p && o.node)
  .map(o => o.node))].sort().join(',');
let lo = D.lo, hi = D.hi, pinned = null;
const kind = o => o.blocking ? 'blocking' : o.stuck ? 'stuck'
  : (o.linearized_at !== null && o.linearized_at !== undefined) ? 'linearized' : 'other';
const s = ns => (ns / 1e9).toFixed(3) + 's';
const esc = t => String(t).replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
function width() { return Math.max(600, box.clientWidth || 1200); }
function x(t) { return LEFT + (width() - LEFT - 16) * (t - lo) / Math.max(1, hi - lo); }
function label(text, px) {
  const n = Math.floor((px - 6) / CH);
  if (n <= 0) return '';
  return text.length <= n ? text : (n > 1 ? text.slice(0, n - 1) + '\u2026' : '');
}
function describe(o) {
  const lines = [`process ${o.process}: ${o.desc}`,
    `node ${o.node || '?'}, ${o.type}, history index ${o.invoke_index}` +
      (o.line !== null && o.line !== undefined ? `, line ${o.line}` : ''),
    `invoked ${s(o.time)}, ` + (o.end_time === null ? 'never returned' : `returned ${s(o.end_time)}`),
    `state before: ${o.state_before}`];
  if (o.state_after !== null && o.state_after !== undefined)
    lines.push(`state after:  ${o.state_after}  (linearized #${o.linearized_at + 1})`);
  else if (o.stuck) lines.push('could not be linearized after the prefix');
  if (o.blocking) lines.push('the search could not get past this completion');
  return lines.join('\n');
}
function draw() {
  const W = width(), H = TOP + LANE * procs.length + 28;
  const p = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">`];
  for (const f of D.faults) {
    const a = Math.max(LEFT, x(f.start)), b = Math.min(W - 16, x(f.end));
    if (b <= LEFT || a >= W - 16) continue;
    p.push(`<rect class="fault" x="${a}" y="14" width="${Math.max(2, b - a)}" height="${H - 40}" ` +
      `fill="${f.colour}" fill-opacity="0.14" stroke="${f.colour}" stroke-opacity="0.5">` +
      `<title>${esc(f.label)}</title></rect>`);
    p.push(`<text x="${a + 3}" y="26" fill="${f.colour}">${esc(label(f.label, Math.max(60, b - a)))}</text>`);
  }
  procs.forEach((pr, i) => {
    const y = TOP + i * LANE;
    p.push(`<text x="${LEFT - 8}" y="${y + 13}" text-anchor="end">process ${esc(pr)}</text>`);
    p.push(`<text x="${LEFT - 8}" y="${y + 23}" text-anchor="end" fill="#777">${esc(nodesOf(pr))}</text>`);
    p.push(`<line x1="${LEFT}" x2="${W - 16}" y1="${y + LANE - 3}" y2="${y + LANE - 3}" stroke="#eee"/>`);
  });
  D.ops.forEach((o, i) => {
    const y = TOP + procs.indexOf(String(o.process)) * LANE + 2;
    const a = x(o.time), b = o.end_time === null ? W - 16 : x(o.end_time);
    if (b < LEFT || a > W - 16) return;
    const a2 = Math.max(LEFT, a), w = Math.max(3, Math.min(W - 16, b) - a2), k = kind(o);
    const dash = o.end_time === null ? ' stroke-dasharray="4 3"' : '';
    const edge = k === 'blocking' ? ' stroke="#b71c1c" stroke-width="2"' : ' stroke="#777"';
    p.push(`<g class="op" data-i="${i}"><rect x="${a2}" y="${y}" width="${w}" height="${BAR}" ` +
      `fill="${FILL[k]}"${edge}${dash}/><text x="${a2 + 3}" y="${y + 13}">` +
      `${esc(label(o.desc, w))}</text></g>`);
  });
  const span = (hi - lo) / 1e9, steps = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60];
  const step = steps.find(v => span / v <= 10) || 120, ay = H - 10;
  for (let t = Math.ceil(lo / 1e9 / step) * step; t <= hi / 1e9; t += step)
    p.push(`<text class="tick" x="${x(t * 1e9)}" y="${ay}" text-anchor="middle" fill="#555">` +
      `${+t.toFixed(3)}s</text>`);
  p.push('</svg>');
  box.innerHTML = p.join('');
  box.appendChild(tip);
}
function show(el, ev) {
  const o = D.ops[+el.dataset.i];
  tip.textContent = describe(o);
  tip.style.display = 'block';
  // Fixed to the viewport, kept inside it: a lane near the edge still shows its whole tooltip.
  tip.style.left = Math.max(4, Math.min(ev.clientX + 12, window.innerWidth - tip.offsetWidth - 8)) + 'px';
  tip.style.top = Math.max(4, Math.min(ev.clientY + 14, window.innerHeight - tip.offsetHeight - 8)) + 'px';
}
box.addEventListener('mousemove', ev => {
  if (drag) return;
  const g = ev.target.closest('g.op');
  if (pinned !== null) return;
  if (g) show(g, ev); else tip.style.display = 'none';
});
box.addEventListener('click', ev => {
  const g = ev.target.closest('g.op');
  if (moved) return;
  if (g && pinned !== g.dataset.i) { pinned = g.dataset.i; show(g, ev); tip.classList.add('pinned'); }
  else { pinned = null; tip.classList.remove('pinned'); tip.style.display = 'none'; }
});
box.addEventListener('wheel', ev => {
  ev.preventDefault();
  const r = box.getBoundingClientRect(), px = ev.clientX - r.left;
  const at = lo + (hi - lo) * Math.max(0, px - LEFT) / (width() - LEFT - 16);
  const f = ev.deltaY < 0 ? 0.8 : 1.25, nlo = at - (at - lo) * f, nhi = at + (hi - at) * f;
  if (nhi - nlo > 1e5) { lo = nlo; hi = nhi; draw(); }
}, {passive: false});
let drag = null, moved = false;
box.addEventListener('mousedown', ev => { drag = {x: ev.clientX, lo, hi}; moved = false; box.classList.add('drag'); });
window.addEventListener('mouseup', () => { drag = null; box.classList.remove('drag'); });
window.addEventListener('mousemove', ev => {
  if (!drag) return;
  const dx = ev.clientX - drag.x;
  if (Math.abs(dx) > 2) moved = true;
  const shift = (drag.hi - drag.lo) * dx / (width() - LEFT - 16);
  lo = drag.lo - shift; hi = drag.hi - shift; draw();
});
document.getElementById('reset').addEventListener('click', () => { lo = D.lo; hi = D.hi; draw(); });
window.addEventListener('resize', draw);
draw();
document.body.dataset.drawnMs = Math.round(performance.now());
"""


def _faults(history: Sequence[Op], lo: int, hi: int) -> list[dict[str, Any]]:
    """The fault windows overlapping [lo, hi], each labelled as the matrix's why line says it."""
    from squall.faults import colour

    out = []
    for w in fault_windows(history):
        if w["end"] < lo or w["start"] > hi:
            continue
        value = fault_value(w)
        out.append(
            {
                "fault": w["fault"],
                "start": w["start"],
                "end": w["end"],
                "colour": colour(w["fault"]),
                "label": describe_window(w),
                "targets": value.get("targets"),
            }
        )
    return out


def page_data(result: dict[str, Any], history: Sequence[Op]) -> dict[str, Any]:
    """What the page draws: the window's ops, its time span and the faults in it (all in ns)."""
    ce = result.get("counterexample") or {}
    ops = [dict(o) for o in ce.get("window_ops") or []]
    starts = [o["time"] for o in ops if isinstance(o.get("time"), int)]
    ends = [o["end_time"] for o in ops if isinstance(o.get("end_time"), int)]
    lo = min(starts, default=0)
    hi = max(ends + starts, default=lo + 1)
    margin = max((hi - lo) // 20, 1_000_000)
    return {
        "key": ce.get("key"),
        "why": result.get("why", ""),
        "ops": ops,
        "lo": lo - margin,
        "hi": hi + margin,
        "hi_all": hi,
        "faults": _faults(history, lo - margin, hi + margin),
    }


def _rows(ops: list[dict[str, Any]]) -> str:
    return "".join(
        f"<tr><td>{html.escape(str(o.get('process')))}</td><td><code>{html.escape(str(o.get('desc')))}"
        f"</code></td><td>{html.escape(str(o.get('node') or '?'))}</td>"
        f"<td>{html.escape(str(o.get('invoke_index')))}</td>"
        f"<td>{html.escape(str(o.get('state_after', '')))}</td></tr>"
        for o in ops
    )


def render(result: dict[str, Any], history: Sequence[Op]) -> str:
    ce = result.get("counterexample") or {}
    data = page_data(result, history)
    # "</" cannot close the data block early: JSON allows "<\/".
    blob = json.dumps(data, default=str, separators=(",", ":")).replace("</", "<\\/")
    legend = "".join(
        f'<span><i style="background:{c}"></i>{n}</span>'
        for n, c in (
            ("in the longest linearizable prefix", "#a5d6a7"),
            ("could not follow it", "#ffcc80"),
            ("the search could not get past its completion", "#ef9a9a"),
            ("other", "#e0e0e0"),
        )
    )
    head = "Operations that could not be linearized"
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>linearizability: {html.escape(str(ce.get("key")))}</title><style>{_CSS}</style></head><body>
<h1>Not linearizable: key {html.escape(str(ce.get("key")))}</h1>
<p class="why">{html.escape(str(result.get("why", "")))}</p>
<p class="muted">The search linearized {ce.get("prefix_length", 0)} of the partition's
{ce.get("partition_ops", 0)} operations; the model state after them is
<code>{html.escape(str(ce.get("state_desc")))}</code>. The failing window is drawn
({len(data["ops"])} operations) with the faults acting in it. Hover an operation for its
node, times and states; click to pin; wheel to zoom, drag to pan
<button id="reset">reset zoom</button></p>
<div class="legend">{legend}</div>
<div id="box"><div id="tip"></div></div>
<h2>{head}</h2><table><tr><th>process</th><th>operation</th><th>node</th><th>history index</th>
<th></th></tr>{_rows(list(ce.get("unlinearizable") or []))}</table>
<h2>End of the linearizable prefix</h2><table><tr><th>process</th><th>operation</th><th>node</th>
<th>history index</th><th>state after</th></tr>{_rows(list(ce.get("prefix_tail") or []))}</table>
<script type="application/json" id="data">{blob}</script>
<script>{_SCRIPT}</script>
</body></html>"""


def write_html(path: str | os.PathLike[str], result: dict[str, Any], history: Sequence[Op]) -> Path:
    p = Path(path)
    p.write_text(render(result, history), encoding="utf-8")
    return p


def write_for_run(run_dir: Path, results: dict[str, Any], history: list[Any]) -> Path | None:
    """``linear.html`` in a run directory, when its linearizability checker found a violation.

    The checker's result carries the counterexample as data; this draws it,
    and records the page's path in that result (``html``).
    """
    res = results.get("linearizable")
    if not isinstance(res, dict) or res.get("valid") is not False or "counterexample" not in res:
        return None
    path = write_html(run_dir / "linear.html", res, history)
    res["html"] = str(path)
    return path
