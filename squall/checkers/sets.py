"""The set checker, in the spirit of Jepsen's set-full.

Clients ``add`` distinct integers; at the end, after the final heal, one or
more clients ``read`` the whole set. The authoritative read is the ok read
that *completed last*: every add that was acknowledged before it was invoked
must be in it, because an acknowledged write is durable and the read is
linearizable. Other ok reads are checked the same way (each against the adds
acknowledged before *it* was invoked) and listed as stale if they miss one.

Classes of elements (counts plus the first few, sorted):

* lost: acknowledged (ok) before the authoritative read, absent from it;
* unexpected: present, but never attempted by any add;
* duplicated: present more than once in one read (a set cannot hold that);
* recovered: the add was indeterminate (info, or never completed) and the
  element is present, so it did happen — allowed, but worth seeing;
* failed_present: every add of it failed (the store said it did not happen)
  yet it is present — ``fail`` promises the op had no effect.

Valid iff nothing is lost, unexpected, duplicated, failed-yet-present or
stale; unknown if no final read succeeded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from squall.checkers.base import UNKNOWN, CheckContext
from squall.checkers.stats import Timed, timed_ops
from squall.history import FAIL, INFO, OK

SHOW = 8  # how many elements of each class a result lists


def _first(elems: Iterable[Any]) -> list[Any]:
    return sorted(elems, key=repr)[:SHOW]


def _klass(elems: set[Any]) -> dict[str, Any]:
    return {"count": len(elems), "first": _first(elems)}


def _read_elems(t: Timed) -> list[Any]:
    value = t.complete.value if t.complete is not None else None
    if not isinstance(value, list):
        raise ValueError(
            f"op {t.complete.index if t.complete else t.invoke.index}: a set read must "
            f"complete with a list of elements, got {value!r}; fix the set workload's client"
        )
    return value


def _acked_before(adds: list[Timed], when: int) -> set[Any]:
    return {t.invoke.value for t in adds if t.outcome == OK and t.end < when}


def check_set(ctx: CheckContext) -> dict[str, Any]:
    ops = timed_ops(ctx.history)
    adds = [t for t in ops if t.f == "add"]
    reads = [t for t in ops if t.f == "read" and t.outcome == OK]
    attempted = {t.invoke.value for t in adds}
    by_outcome: dict[str, set[Any]] = {OK: set(), FAIL: set(), INFO: set()}
    for t in adds:
        by_outcome[t.outcome].add(t.invoke.value)
    base = {"attempt_count": len(attempted), "acknowledged_count": len(by_outcome[OK])}
    if not reads:
        return {
            "valid": UNKNOWN,
            "why": f"no final read succeeded, so the {len(attempted)} adds cannot be checked",
            **base,
        }
    final = max(reads, key=lambda t: t.end)
    elems = _read_elems(final)
    present = set(elems)
    lost = _acked_before(adds, final.start) - present
    unexpected = present - attempted
    duplicated = {e for e, n in Counter(elems).items() if n > 1}
    recovered = (by_outcome[INFO] - by_outcome[OK]) & present
    failed_present = (by_outcome[FAIL] - by_outcome[OK] - by_outcome[INFO]) & present
    stale = []
    for r in reads:
        if r is final:
            continue
        missing = _acked_before(adds, r.start) - set(_read_elems(r))
        if missing:
            stale.append(
                {
                    "op": r.complete.index if r.complete else None,
                    "node": r.invoke.node,
                    "missing": _klass(missing),
                }
            )
    res: dict[str, Any] = {
        **base,
        "final_read": {
            "op": final.complete.index if final.complete else None,
            "node": final.invoke.node,
            "size": len(elems),
            "reads_ok": len(reads),
        },
        "lost": _klass(lost),
        "unexpected": _klass(unexpected),
        "duplicated": _klass(duplicated),
        "recovered": _klass(recovered),
        "failed_present": _klass(failed_present),
        "stale_reads": stale,
    }
    problems = _problems(res)
    res["valid"] = not problems
    if problems:
        res["why"] = "; ".join(problems)
    return res


def _problems(res: dict[str, Any]) -> list[str]:
    out = []
    for key, text in (
        ("lost", "acknowledged adds lost"),
        ("unexpected", "unexpected (never added)"),
        ("duplicated", "duplicated"),
        ("failed_present", "present although their add failed"),
    ):
        k = res[key]
        if k["count"]:
            out.append(f"{k['count']} {text} (e.g. {', '.join(map(str, k['first'][:3]))})")
    if res["stale_reads"]:
        s = res["stale_reads"][0]
        out.append(
            f"{len(res['stale_reads'])} earlier reads missed acknowledged adds "
            f"(op {s['op']} on {s['node']} missed {s['missing']['count']})"
        )
    return out
