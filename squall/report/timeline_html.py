"""``timeline.html``: every operation of a run, per worker, with the faults across them.

Jepsen's ``timeline.html`` is the model: one lane per worker (its process ids
w, w+C, w+2C… share a lane: a worker takes a fresh id after an indeterminate
op), each operation a bar from invoke to completion coloured by outcome (ok,
fail, info, or never completed), the fault windows drawn across all lanes and
named as the matrix names them (a partition by its sides). Hover shows the
op, its value, the node that served it and its times; the wheel zooms, a drag
pans. Drawn on a canvas from one compact JSON block, so tens of thousands of
ops open at once; past ``MAX_OPS`` the page keeps a window (around the first
op a checker points at, else the start) and says which.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from squall.history import Op, fault_windows, pair_ops
from squall.report.evidence import describe_window

MAX_OPS = 20_000
TYPES = {"ok": 0, "fail": 1, "info": 2}  # 3: never completed
COLOURS = ["#66bb6a", "#ef5350", "#ffa726", "#bdbdbd"]

_SCRIPT = r"""
const D = JSON.parse(document.getElementById('data').textContent);
const COL = D.colours, cv = document.getElementById('cv'), ctx = cv.getContext('2d');
const tip = document.getElementById('tip'), box = document.getElementById('box');
const LEFT = 120, LANE = 16, TOP = 30;
const lanes = D.lanes, byLane = lanes.map(() => []);
D.ops.forEach((o, i) => byLane[o[0]].push(i));
let lo = D.lo, hi = D.hi;
function W() { return Math.max(600, box.clientWidth); }
function x(t) { return LEFT + (W() - LEFT - 10) * (t - lo) / Math.max(1, hi - lo); }
function t_at(px) { return lo + (hi - lo) * (px - LEFT) / (W() - LEFT - 10); }
function draw() {
  const w = W(), h = TOP + LANE * lanes.length + 24, r = window.devicePixelRatio || 1;
  cv.width = w * r; cv.height = h * r; cv.style.width = w + 'px'; cv.style.height = h + 'px';
  ctx.setTransform(r, 0, 0, r, 0, 0); ctx.clearRect(0, 0, w, h);
  ctx.font = '11px monospace';
  for (const f of D.faults) {
    const a = Math.max(LEFT, x(f.start)), b = Math.min(w - 10, x(f.end));
    if (b <= LEFT || a >= w - 10) continue;
    ctx.fillStyle = f.colour + '2a'; ctx.fillRect(a, 14, b - a, h - 34);
    ctx.fillStyle = f.colour; ctx.fillText(f.label.slice(0, Math.max(8, (b - a) / 6.7)), a + 2, 24);
  }
  lanes.forEach((name, i) => {
    ctx.fillStyle = '#333'; ctx.textAlign = 'right';
    ctx.fillText(name, LEFT - 6, TOP + i * LANE + 11); ctx.textAlign = 'left';
  });
  for (const o of D.ops) {
    const a = x(o[1]), b = o[2] < 0 ? w - 10 : x(o[2]);
    if (b < LEFT || a > w - 10) continue;
    ctx.fillStyle = COL[o[3]];
    ctx.fillRect(Math.max(LEFT, a), TOP + o[0] * LANE + 2, Math.max(1.5, Math.min(b, w - 10) - Math.max(LEFT, a)), LANE - 5);
  }
  const span = (hi - lo) / 1e9, steps = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300];
  const step = steps.find(v => span / v <= 12) || 600;
  ctx.fillStyle = '#555'; ctx.textAlign = 'center';
  for (let t = Math.ceil(lo / 1e9 / step) * step; t <= hi / 1e9; t += step)
    ctx.fillText(+t.toFixed(2) + 's', x(t * 1e9), h - 6);
  ctx.textAlign = 'left';
}
function find(ev) {
  const r = cv.getBoundingClientRect(), px = ev.clientX - r.left, py = ev.clientY - r.top;
  const lane = Math.floor((py - TOP) / LANE);
  if (lane < 0 || lane >= lanes.length || px < LEFT) return null;
  const t = t_at(px), slack = (hi - lo) * 3 / W();
  let best = null;
  for (const i of byLane[lane]) {
    const o = D.ops[i], end = o[2] < 0 ? D.hi : o[2];
    if (o[1] - slack <= t && t <= end + slack) { best = i; if (o[1] <= t && t <= end) break; }
  }
  return best;
}
const kinds = ['ok', 'fail', 'info', 'never completed'];
cv.addEventListener('mousemove', ev => {
  if (drag) return;
  const i = find(ev);
  if (i === null) { tip.style.display = 'none'; return; }
  const o = D.ops[i];
  tip.textContent = `${D.fs[o[4]]} ${o[6]}\n${kinds[o[3]]}${o[7] ? ' (' + o[7] + ')' : ''}, node ${D.nodes[o[5]] || '?'}, process ${o[8]}\n` +
    `invoked ${(o[1] / 1e9).toFixed(3)}s` + (o[2] < 0 ? '' : `, returned ${(o[2] / 1e9).toFixed(3)}s (${((o[2] - o[1]) / 1e6).toFixed(1)} ms)`);
  tip.style.display = 'block';
  tip.style.left = Math.max(4, Math.min(ev.clientX + 12, window.innerWidth - tip.offsetWidth - 8)) + 'px';
  tip.style.top = Math.max(4, Math.min(ev.clientY + 12, window.innerHeight - tip.offsetHeight - 8)) + 'px';
});
cv.addEventListener('mouseleave', () => { tip.style.display = 'none'; });
cv.addEventListener('wheel', ev => {
  ev.preventDefault();
  const r = cv.getBoundingClientRect(), at = t_at(Math.max(LEFT, ev.clientX - r.left));
  const f = ev.deltaY < 0 ? 0.8 : 1.25, nlo = at - (at - lo) * f, nhi = at + (hi - at) * f;
  if (nhi - nlo > 1e6) { lo = nlo; hi = nhi; draw(); }
}, {passive: false});
let drag = null;
cv.addEventListener('mousedown', ev => { drag = {x: ev.clientX, lo, hi}; });
window.addEventListener('mouseup', () => { drag = null; });
window.addEventListener('mousemove', ev => {
  if (!drag) return;
  const shift = (drag.hi - drag.lo) * (ev.clientX - drag.x) / (W() - LEFT - 10);
  lo = drag.lo - shift; hi = drag.hi - shift; draw();
});
document.getElementById('reset').onclick = () => { lo = D.lo; hi = D.hi; draw(); };
window.addEventListener('resize', draw);
draw();
document.body.dataset.drawnMs = Math.round(performance.now());
"""


def _short(value: Any, most: int = 60) -> str:
    text = json.dumps(value, default=str, separators=(",", ":"))
    return text if len(text) <= most else text[: most - 1] + "\u2026"


def page_data(
    history: Sequence[Op], concurrency: int | None = None, focus_ns: int | None = None
) -> dict[str, Any]:
    """The compact form the page draws; at most ``MAX_OPS`` operations, windowed around ``focus_ns``."""
    pairs = [p for p in pair_ops(o for o in history if not o.is_nemesis)]
    total = len(pairs)
    shown, note = pairs, ""
    if total > MAX_OPS:
        pairs_by_time = sorted(pairs, key=lambda p: p.invoke.time)
        at = 0
        if focus_ns is not None:
            at = next((i for i, p in enumerate(pairs_by_time) if p.invoke.time >= focus_ns), total)
        start = max(0, min(at - MAX_OPS // 2, total - MAX_OPS))
        shown = pairs_by_time[start : start + MAX_OPS]
        note = f"showing operations {start + 1}-{start + len(shown)} of {total}" + (
            " around the first evidence" if focus_ns is not None else ""
        )

    def lane_of(process: Any) -> str:
        if isinstance(process, int) and concurrency and process < 10_000:
            return f"worker {process % concurrency}"
        return f"process {process}"

    lanes = sorted(
        {lane_of(p.invoke.process) for p in shown},
        key=lambda s: (
            not s.startswith("worker"),
            int(s.split()[-1]) if s.split()[-1].isdigit() else 0,
            s,
        ),
    )
    lane_ix = {name: i for i, name in enumerate(lanes)}
    fs: list[str] = []
    nodes: list[str] = []
    ops: list[list[Any]] = []
    starts: list[int] = []
    for p in shown:
        c = p.complete
        node = (c.node if c is not None and c.node else p.invoke.node) or ""
        for table, item in ((fs, p.invoke.f), (nodes, node)):
            if item not in table:
                table.append(item)
        value = c.value if c is not None and c.type == "ok" else p.invoke.value
        starts.append(p.invoke.time)
        if c is not None:
            starts.append(c.time)
        ops.append(
            [
                lane_ix[lane_of(p.invoke.process)],
                p.invoke.time,
                c.time if c is not None else -1,
                TYPES.get(c.type, 3) if c is not None else 3,
                fs.index(p.invoke.f),
                nodes.index(node),
                _short(value),
                (c.error if c is not None else None) or "",
                str(p.invoke.process),
            ]
        )
    lo, hi = (min(starts), max(starts)) if starts else (0, 1)
    faults = [
        {
            "fault": w["fault"],
            "start": w["start"],
            "end": w["end"],
            "label": describe_window(w),
            "colour": _colour(w["fault"]),
        }
        for w in fault_windows(history)
    ]
    return {
        "lanes": lanes,
        "ops": ops,
        "fs": fs,
        "nodes": nodes,
        "faults": faults,
        "lo": lo,
        "hi": hi + max((hi - lo) // 50, 1),
        "colours": COLOURS,
        "total": total,
        "note": note,
    }


def _colour(kind: str) -> str:
    from squall.faults import colour

    return colour(kind)


def render(
    history: Sequence[Op],
    title: str = "timeline",
    concurrency: int | None = None,
    focus_ns: int | None = None,
) -> str:
    data = page_data(history, concurrency, focus_ns)
    blob = json.dumps(data, separators=(",", ":"), default=str).replace("</", "<\\/")
    legend = "".join(
        f'<span><i style="background:{c}"></i>{n}</span>'
        for n, c in zip(("ok", "fail", "info", "never completed"), COLOURS, strict=True)
    )
    shown = len(data["ops"])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:16px;color:#222}}
#box{{position:relative;border:1px solid #ccc;cursor:grab}}
#tip{{position:fixed;display:none;background:#fffff2;border:1px solid #999;padding:5px 7px;
font:12px/1.35 monospace;white-space:pre;pointer-events:none;z-index:2}}
.legend span{{margin-right:14px}}.legend i{{display:inline-block;width:14px;height:10px;margin-right:4px}}
.muted{{color:#777}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="muted">{shown} of {data["total"]} operations{(" — " + html.escape(data["note"])) if data["note"] else ""};
one lane per worker; wheel to zoom, drag to pan <button id="reset">reset</button></p>
<div class="legend">{legend}</div>
<div id="box"><canvas id="cv"></canvas><div id="tip"></div></div>
<script type="application/json" id="data">{blob}</script>
<script>{_SCRIPT}</script></body></html>"""


def write_timeline(
    run_dir: Path, history: Sequence[Op], test: Mapping[str, Any], results: Mapping[str, Any]
) -> Path:
    """``timeline.html`` for a run, windowed around the first evidence when the run is long."""
    from squall.report.evidence import detection_seconds

    detected = detection_seconds(dict(results), run_dir / "history.jsonl")
    concurrency = test.get("concurrency")
    path = run_dir / "timeline.html"
    path.write_text(
        render(
            history,
            f"{test.get('name') or run_dir.parent.name}: every operation",
            int(concurrency) if isinstance(concurrency, int) else None,
            int(detected * 1e9) if detected is not None else None,
        ),
        encoding="utf-8",
    )
    return path
