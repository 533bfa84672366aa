"""The page a person opens first: ``report.html``, one self-contained file.

It answers, top to bottom: did the run pass, and why not in one sentence;
what faults ran when; what latency and throughput did; how long failover
took; what each checker said; how the run was configured; and the exact
command that replays it. Images are inlined (base64) and the fault timeline
is inline SVG, so the file can be mailed or attached to an issue alone.
"""

from __future__ import annotations

import base64
import html
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from squall.checkers.stats import fault_value
from squall.faults import colour as fault_colour
from squall.history import HistoryError, Op, fault_windows, iter_history
from squall.report.evidence import sides_of
from squall.report.junit import checker_results, why_of

REPORT_HTML = "report.html"
PLOTS = (("latency-raw.png", "Latency of every operation"), ("rate.png", "Throughput"))
# Which failure to name first when several checkers failed: the ones a
# person most needs to hear about lead.
PRIORITY = ("run", "linear", "linearizable", "set", "sets", "fidelity", "failover", "starvation")
VERDICT_COLOURS = {True: "#1a7f37", False: "#cf222e", "unknown": "#9a6700"}


@dataclass(frozen=True)
class Run:
    """What the report needs from a run directory."""

    run_dir: Path
    test: Mapping[str, Any]
    results: Mapping[str, Any] | None
    windows: list[dict[str, Any]] = field(default_factory=list)
    span_ns: int = 0
    op_count: int = 0
    problems: list[str] = field(default_factory=list)
    evidence: str = (
        ""  # the one sentence the matrix prints: what went wrong, where, during which fault
    )


def _mapping(path: Path, parse: Any, problems: list[str]) -> dict[str, Any] | None:
    """The mapping a run file holds, or None with a problem noted (missing, damaged, not a mapping)."""
    if not path.exists():
        return None
    try:
        value = parse(path.read_text(encoding="utf-8"))
    except (ValueError, yaml.YAMLError, OSError) as exc:
        problems.append(f"{path.name} is damaged ({type(exc).__name__}), so it was not read")
        return None
    if value is None and path.suffix == ".yaml":
        return {}
    if not isinstance(value, dict):
        problems.append(f"{path.name} holds a {type(value).__name__}, not a mapping: not read")
        return None
    return value


def load_run(run_dir: Path) -> Run:
    """Reads test.yaml, results.json and the history's faults; notes what is missing."""
    problems: list[str] = []
    test: Mapping[str, Any] = _mapping(run_dir / "test.yaml", yaml.safe_load, problems) or {}
    if not (run_dir / "test.yaml").exists():
        problems.append("test.yaml is missing: the configuration is unknown")
    results = _mapping(run_dir / "results.json", json.loads, problems)
    if not (run_dir / "results.json").exists():
        problems.append("results.json is missing: the run ended before its checkers ran")
    nemesis: list[Op] = []
    span, count = 0, 0
    try:
        for op in iter_history(run_dir / "history.jsonl"):
            count += 1
            span = max(span, op.time)
            if op.is_nemesis:
                nemesis.append(op)
    except FileNotFoundError:
        problems.append("history.jsonl is missing")
    except HistoryError as exc:
        problems.append(f"history.jsonl is damaged, the timeline stops early: {exc}")
    windows = fault_windows(nemesis)
    for w in windows:  # fault_windows closes open windows at the last *nemesis* op
        if w.get("unhealed"):
            w["end"] = span
    return Run(run_dir, test, results, windows, span, count, problems, why_line(results, run_dir))


def why_line(results: Mapping[str, Any] | None, run_dir: Path) -> str:
    """What went wrong, on which key, served by which node, during which fault (as the matrix says)."""
    if not results or results.get("valid") is not False:
        return ""
    from squall.report.evidence import detection_seconds, evidence

    deciders = [k for k, v in results.items() if isinstance(v, dict) and v.get("valid") is False]
    deciders.sort(key=lambda n: PRIORITY.index(n) if n in PRIORITY else len(PRIORITY))
    history = run_dir / "history.jsonl"
    try:
        return evidence(dict(results), deciders, detection_seconds(dict(results), history), history)
    except (OSError, HistoryError, ValueError):
        return ""


def verdict_of(results: Mapping[str, Any] | None) -> Any:
    return "unknown" if results is None else results.get("valid", "unknown")


def verdict_sentence(results: Mapping[str, Any] | None) -> str:
    """The verdict and why, in one sentence."""
    if results is None:
        return "unknown: the run has no results.json, so it was never checked"
    checks = checker_results(results)
    verdict = verdict_of(results)
    errors = results.get("run_errors") or []
    if errors and verdict is not False:
        # A run that broke says little about the store; lead with why it broke.
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        return f"{'valid' if verdict is True else 'unknown'}: the run itself failed — {errors[0]}{more}"
    if results.get("interrupted") and verdict is not False:
        return "unknown: the run was interrupted before it finished, so its checks are partial"
    if verdict is True:
        return f"valid: all {len(checks)} checkers passed ({', '.join(checks)})"
    word = "invalid" if verdict is False else "unknown"
    if verdict is False:
        bad = [n for n, r in checks.items() if r["valid"] is False]
    else:
        bad = [n for n, r in checks.items() if r["valid"] is not True]
    if not bad:
        return f"{word}: no checker explains it (results.json says valid={verdict!r})"
    bad.sort(key=lambda n: PRIORITY.index(n) if n in PRIORITY else len(PRIORITY))
    first = bad[0]
    why = why_of(checks[first])
    lead = why if first.lower()[:5] in why.lower() else f"{first} — {why}"
    more = f" (also {word}: {', '.join(bad[1:])})" if len(bad) > 1 else ""
    return f"{word}: {lead}{more}"


def _e(x: Any) -> str:
    return html.escape(str(x))


def _badge(valid: Any) -> str:
    colour = VERDICT_COLOURS.get(valid if isinstance(valid, bool) else "unknown", "#9a6700")
    word = (
        {True: "valid", False: "invalid"}.get(valid, "unknown")
        if isinstance(valid, bool)
        else "unknown"
    )
    return f'<span class="badge" style="background:{colour}">{word}</span>'


def timeline_svg(windows: Sequence[Mapping[str, Any]], span_ns: int, width: int = 1100) -> str:
    """One lane per fault kind, a bar per window, a seconds axis underneath."""
    if not windows:
        return '<p class="muted">No faults were injected.</p>'
    kinds = sorted({w["fault"] for w in windows})
    left, lane, span_s = 90, 26, max(span_ns / 1e9, 1e-9)
    plot_w = width - left - 20
    height = lane * len(kinds) + 30

    def x(t_ns: int) -> float:
        return left + plot_w * (t_ns / 1e9) / span_s

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="fault timeline">'
    ]
    for i, kind in enumerate(kinds):
        y = i * lane
        parts.append(
            f'<text x="{left - 8}" y="{y + 17}" text-anchor="end" class="lane">{_e(kind)}</text>'
        )
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y + lane - 2}" '
            f'y2="{y + lane - 2}" stroke="#ddd"/>'
        )
    for w in windows:
        y = kinds.index(w["fault"]) * lane + 4
        x0, x1 = x(w["start"]), x(w["end"])
        value = fault_value(w)
        tip = (
            f"{w['fault']} {w['start'] / 1e9:.1f}s–{w['end'] / 1e9:.1f}s "
            f"targets {value.get('targets')} leader {value.get('leader')}"
            + (" (never healed)" if w.get("unhealed") else "")
        )
        colour = fault_colour(w["fault"])
        stroke = ' stroke="#000" stroke-dasharray="3 2"' if w.get("unhealed") else ""
        parts.append(
            f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 2):.1f}" height="{lane - 10}"'
            f' fill="{colour}" fill-opacity="0.75"{stroke}><title>{_e(tip)}</title></rect>'
        )
        # A partition is told by its sides (n3 | n1,n2,n4,n5), not by every node it touched.
        said = (
            sides_of(w)
            if w["fault"] == "partition"
            else ",".join(map(str, value.get("targets") or []))
        )
        if x1 - x0 > 40 and said:
            room = max(1, int((x1 - x0 - 6) / 6.5))
            shown = said if len(said) <= room else said[: max(1, room - 1)] + "…"
            parts.append(f'<text x="{x0 + 4:.1f}" y="{y + 13}" class="in">{_e(shown)}</text>')
    axis_y = lane * len(kinds) + 14
    step = next(s for s in (1, 2, 5, 10, 30, 60, 120, 300, 600, 1e9) if span_s / s <= 12)
    t = 0.0
    while t <= span_s:
        xt = left + plot_w * t / span_s
        parts.append(
            f'<text x="{xt:.1f}" y="{axis_y + 10}" text-anchor="middle" class="tick">{t:g}s</text>'
        )
        t += step
    parts.append("</svg>")
    return "".join(parts)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}"><figcaption>'
        f"{_e(alt)}</figcaption></figure>"
    )


def _fmt_s(v: Any) -> str:
    """Seconds for a person: milliseconds below one second, where 0.01s would hide detail."""
    if v is None:
        return "—"
    return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f}s"


def failover_table(results: Mapping[str, Any] | None) -> str:
    fo = next(
        (
            r
            for r in checker_results(results or {}).values()
            if isinstance(r.get("faults"), list) and "by_kind" in r
        ),
        None,
    )
    if fo is None:
        return '<p class="muted">No failover checker ran.</p>'
    rows = []
    for f in fo["faults"]:
        cls = f.get("class") or ("leader" if f.get("hits_leader") else "—")
        unjudged = f.get("unjudged") or {}
        if f.get("unjudged") is None and not f["judged"]:  # a run judged before classes
            unjudged = {"write": f.get("not_judged_because") or "leader untouched"}
        status = {True: "ok", False: "too slow / never", None: "not judged"}[f.get("ok")]
        tr = {True: "", False: ' class="bad"', None: ' class="muted"'}[f.get("ok")]
        cells = [_failover_cell(f, kind, unjudged.get(kind)) for kind in ("write", "read")]
        rows.append(
            f"<tr{tr}><td>{_e(f['fault'])}</td><td>{f['start_s']:.1f}–{f['end_s']:.1f}s"
            f"</td><td>{_e(_names(f.get('leader')))}</td><td>{_e(_names(f.get('targets')))}</td>"
            f"<td>{_e(cls)}<br><small>{_e(f.get('class_reason') or '')}</small></td>"
            f"<td>{_e(f.get('measure') or '')}</td><td>{cells[0]}</td><td>{cells[1]}</td>"
            f"<td>{status}</td></tr>"
        )
    kinds = "".join(
        f"<tr><td>{_e(k)}</td><td>{v['count']}</td><td>{v['judged']}</td>"
        f"<td>{_fmt_s(v['write_p50_s'])}</td><td>{_fmt_s(v['write_max_s'])}</td>"
        f"<td>{_fmt_s(v['read_p50_s'])}</td><td>{_fmt_s(v['read_max_s'])}</td>"
        f"<td>{_fmt_s(v.get('write_gap_max_s'))}</td><td>{_fmt_s(v.get('read_gap_max_s'))}</td></tr>"
        for k, v in fo["by_kind"].items()
    )
    return (
        f"<p>Bound: {fo['bound_s']:g}s. A fault that removes the leader is timed from its "
        "start, one that takes out a majority from its heal, to the first acknowledged op "
        "invoked after it; a fault that leaves a working majority with its leader must not "
        "stop service: its longest gap between acknowledged ops while it acts is held to "
        "the bound.</p><table><tr><th>fault</th><th>active</th><th>leader</th>"
        "<th>targets</th><th>class</th><th>measured</th><th>write</th><th>read</th><th></th></tr>"
        + "".join(rows)
        + "</table><table><tr><th>kind</th><th>faults</th><th>judged</th>"
        "<th>write back p50</th><th>write back max</th><th>read back p50</th>"
        "<th>read back max</th><th>longest write gap</th><th>longest read gap</th></tr>"
        + kinds
        + "</table>"
    )


def _failover_cell(f: Mapping[str, Any], kind: str, unjudged: str | None) -> str:
    """One kind's measured figure, or the stated reason it was not judged."""
    if unjudged:
        return f'<span class="muted">not judged: {_e(unjudged)}</span>'
    value = f.get(f"{kind}_gap_s") if f.get("class") == "service" else f.get(f"{kind}_recovery_s")
    return _fmt_s(value)


def _figures(res: Mapping[str, Any], most: int = 6) -> str:
    """A passing checker's headline numbers: its top-level scalars, so a row is not blank."""
    skip = {"valid", "seconds", "why", "note"}
    pairs = []
    for k, v in res.items():
        if k in skip or not isinstance(v, int | float | str) or isinstance(v, bool):
            continue
        if k.endswith("_s") and isinstance(v, int | float):  # span_s 29.98 -> span 29.98s
            pairs.append(f"{k[:-2].replace('_', ' ')} {v:g}s")
        else:
            pairs.append(f"{k.replace('_', ' ')} {v}")
    return ", ".join(pairs[:most])


def _names(v: Any) -> str:
    return ", ".join(map(str, v)) if isinstance(v, list | tuple) else ("—" if v is None else str(v))


def checkers_table(results: Mapping[str, Any] | None) -> str:
    rows = []
    for name, res in checker_results(results or {}).items():
        note = why_of(res) if res["valid"] is not True else res.get("note") or _figures(res)
        detail = _e(json.dumps(res, indent=1, sort_keys=True, default=str))
        rows.append(
            f"<tr><td><b>{_e(name)}</b></td><td>{_badge(res['valid'])}</td>"
            f"<td>{_e(note)}<details><summary>details</summary><pre>{detail}</pre>"
            f"</details></td></tr>"
        )
    return "<table>" + "".join(rows) + "</table>" if rows else '<p class="muted">None.</p>'


def replay_command(test: Mapping[str, Any]) -> str:
    cmd = test.get("command")
    if isinstance(cmd, list | tuple):
        return shlex.join(str(c) for c in cmd)
    return str(cmd) if cmd else f"squall run --seed {test.get('seed', '?')}  # no command recorded"


CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1160px;color:#1f2328}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.verdict{font-size:20px;padding:14px 18px;border-radius:8px;color:#fff;margin:10px 0}
.badge{color:#fff;border-radius:4px;padding:1px 8px;font-size:13px}
table{border-collapse:collapse;margin:8px 0 14px;width:100%}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top;font-size:14px}
th{background:#f6f8fa} tr.bad td{background:#ffebe9} .muted{color:#777}
pre{background:#f6f8fa;padding:10px;overflow:auto;font-size:13px;max-height:420px}
img{max-width:100%} figure{margin:0 0 12px} figcaption{color:#777;font-size:13px}
svg text.lane{font-size:13px} svg text.tick{font-size:11px;fill:#555}
svg text.in{font-size:11px;fill:#fff} code{background:#f6f8fa;padding:2px 4px}
p.why{font-size:16px;margin:4px 0 10px}
"""


def starvation_table(results: Mapping[str, Any] | None) -> str:
    """Write latency with and without faults, when a starvation checker ran."""
    st = next(
        (r for r in checker_results(results or {}).values() if "writes_without_faults" in r),
        None,
    )
    if st is None:
        return ""
    rows = "".join(
        f"<tr><td>{label}</td><td>{v['count']}</td><td>{_fmt_s(v['p50'])}</td>"
        f"<td>{_fmt_s(v['p99'])}</td><td>{_fmt_s(v['max'])}</td></tr>"
        for label, v in (
            ("writes, no fault active", st["writes_without_faults"]),
            ("writes during or just after faults", st["writes_during_faults"]),
            ("reads", st["reads"]),
        )
    )
    return (
        f"<h2>Write starvation</h2><p>Bound: no write may wait over {st['bound_s']:g}s while "
        f"no fault is active; {st['starved_count']} did.</p><table><tr><th></th><th>ops</th>"
        f"<th>p50</th><th>p99</th><th>max</th></tr>{rows}</table>"
    )


def files_list(run_dir: Path) -> str:
    """Relative links to the run's own files (they sit beside the report)."""
    names = [
        "history.jsonl",
        "results.json",
        "results.xml",
        "test.yaml",
        "timeline.html",
        "linear.html",
        "status-samples.jsonl",
        "nemesis-timeline.yaml",
    ]
    links = [f"<a href='{n}'>{n}</a>" for n in names if (run_dir / n).exists()]
    if (run_dir / "nodes").is_dir():
        links.append("<a href='nodes/'>nodes/</a> (logs, data, final digests)")
    return "<h2>Files</h2><p>" + " · ".join(links) + "</p>" if links else ""


def render(run: Run) -> str:
    verdict = verdict_of(run.results)
    colour = VERDICT_COLOURS.get(verdict if isinstance(verdict, bool) else "unknown")
    name = run.test.get("name", run.run_dir.name)
    plots = "".join(_img(run.run_dir / f, alt) for f, alt in PLOTS if (run.run_dir / f).exists())
    linear = (run.run_dir / "linear.html").exists()
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(name)}: "
        f"{_e(verdict_sentence(run.results))}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(name)}</h1><div class='muted'>{_e(run.run_dir)} · "
        f"{run.op_count} ops over {run.span_ns / 1e9:.1f}s · seed {_e(run.test.get('seed'))}</div>",
        f"<div class='verdict' style='background:{colour}'>{_e(verdict_sentence(run.results))}</div>",
        "".join(
            f"<p class='bad'>⚠ {_e(p)}</p>"
            for p in run.problems + list((run.results or {}).get("run_errors") or [])
        ),
        f"<p class='why'>{_e(run.evidence)}</p>" if run.evidence else "",
        "<p>"
        + (
            "<a href='linear.html'>Open the linearizability failure (linear.html)</a> · "
            if linear
            else ""
        )
        + (
            "<a href='timeline.html'>Every operation on a timeline (timeline.html)</a>"
            if (run.run_dir / "timeline.html").exists()
            else ""
        )
        + "</p>",
        "<h2>Faults</h2>" + timeline_svg(run.windows, run.span_ns),
        "<h2>Latency and throughput</h2>" + (plots or "<p class='muted'>No plots.</p>"),
        "<h2>Failover</h2>" + failover_table(run.results),
        starvation_table(run.results),
        "<h2>Checkers</h2>" + checkers_table(run.results),
        "<h2>Replay</h2><p>Seed <b>" + _e(run.test.get("seed")) + "</b>. The exact command:</p>"
        f"<pre>{_e(replay_command(run.test))}</pre>",
        # Flow style for leaf lists keeps node and nemesis lists on one line each.
        "<h2>Configuration</h2><pre>"
        + _e(yaml.safe_dump(dict(run.test), sort_keys=False, default_flow_style=None))
        + "</pre>",
        files_list(run.run_dir),
        "</body></html>",
    ]
    return "\n".join(out)


def write_report(run_dir: str | Path) -> Path:
    """Writes ``report.html`` into the run directory and returns its path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"run directory {run_dir} does not exist; pass the directory "
            "a run wrote (store/<test>/<timestamp>)"
        )
    path = run_dir / REPORT_HTML
    path.write_text(render(load_run(run_dir)), encoding="utf-8")
    return path
