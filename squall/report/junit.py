"""JUnit XML from a composed results dict, for CI systems that read it.

One testcase per checker: ``valid: false`` becomes a failure (message = the
checker's one-sentence ``why``), ``"unknown"`` becomes skipped with its
reason, true passes. The checker's whole result rides along in system-out so
nothing is lost on the way.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RESULTS_XML = "results.xml"


def why_of(result: Mapping[str, Any]) -> str:
    """A checker's own one-sentence reason, or the best stand-in it offers."""
    for key in ("why", "summary", "message", "error", "unknown_reason"):
        if result.get(key):
            return str(result[key])
    if "failed_key" in result:
        return _linear_why(result)
    return f"valid is {result.get('valid')!r}"


def _linear_why(result: Mapping[str, Any]) -> str:
    """A sentence from the linearizability checker's counterexample (it has no ``why``)."""
    ce = result.get("counterexample") or {}
    head = f"linearizability failed on key {result['failed_key']}"
    stuck = [o.get("desc") for o in ce.get("unlinearizable") or [] if o.get("desc")]
    before = [o.get("desc") for o in ce.get("prefix_tail") or [] if o.get("desc")]
    if not stuck:
        return head
    after = f" {before[-1]}" if before else ""
    state = f" (the register held {ce['state_desc']})" if ce.get("state_desc") else ""
    return (
        f"{head}: {stuck[0]} cannot follow{after}{state}"
        if after
        else f"{head}: no order explains {stuck[0]}{state}"
    )


def checker_results(results: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The per-checker entries of a composed results dict (those carrying ``valid``)."""
    return {k: v for k, v in results.items() if isinstance(v, Mapping) and "valid" in v}


def junit_xml(results: Mapping[str, Any], suite: str = "squall") -> str:
    """Renders the results as a JUnit XML document (a string)."""
    cases = checker_results(results)
    failures = sum(1 for r in cases.values() if r["valid"] is False)
    skipped = sum(1 for r in cases.values() if r["valid"] not in (True, False))
    total_s = sum(float(r.get("seconds", 0) or 0) for r in cases.values())
    root = ET.Element(
        "testsuites",
        name=suite,
        tests=str(len(cases)),
        failures=str(failures),
        skipped=str(skipped),
    )
    ts = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        time=f"{total_s:.3f}",
    )
    for name, res in cases.items():
        case = ET.SubElement(
            ts,
            "testcase",
            classname=f"{suite}.checkers",
            name=name,
            time=f"{float(res.get('seconds', 0) or 0):.3f}",
        )
        if res["valid"] is False:
            ET.SubElement(case, "failure", message=why_of(res), type="invalid").text = why_of(res)
        elif res["valid"] is not True:
            ET.SubElement(case, "skipped", message=f"unknown: {why_of(res)}")
        out = ET.SubElement(case, "system-out")
        out.text = json.dumps(res, indent=1, sort_keys=True, default=str)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def matrix_junit_xml(summary: Mapping[str, Any], suite: str = "squall-matrix") -> str:
    """A matrix summary as JUnit: one testcase per run, failed when it did not come out as expected."""
    rows = summary["rows"]
    seeds = {r.get("seed") for r in rows}
    failed = [r for r in rows if not r["passed"]]
    root = ET.Element("testsuites", name=suite, tests=str(len(rows)), failures=str(len(failed)))
    ts = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(rows)),
        failures=str(len(failed)),
        errors="0",
        skipped="0",
        time=f"{sum(float(r.get('seconds') or 0) for r in rows):.1f}",
    )
    for r in rows:
        name = r["case"] + (f" [seed {r.get('seed')}]" if len(seeds) > 1 else "")
        case = ET.SubElement(
            ts, "testcase", classname=f"{suite}.cases", name=name, time=f"{r.get('seconds', 0)}"
        )
        if not r["passed"]:
            said = f"expected {json.dumps(r['expected'])}, got {json.dumps(r['got'])}"
            ET.SubElement(
                case, "failure", message=said, type="unexpected"
            ).text = f"{said}. {r.get('evidence') or ''} {r.get('replay') or ''}".strip()
        ET.SubElement(case, "system-out").text = json.dumps(r, indent=1, default=str)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_matrix_junit(summary: Mapping[str, Any], path: Path) -> Path:
    path.write_text(matrix_junit_xml(summary), encoding="utf-8")
    return path


def write_junit(
    results: Mapping[str, Any], path: str | os.PathLike[str], suite: str = "squall"
) -> Path:
    """Writes ``results.xml`` (or ``path`` if it names a file) and returns its path."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS_XML
    p.write_text(junit_xml(results, suite), encoding="utf-8")
    return p
