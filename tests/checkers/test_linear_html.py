"""The counterexample page: lanes, the failing window, fault bands, and a bounded size."""

from __future__ import annotations

import random
import re

from squall.checkers.counterexample import fault_bands
from squall.checkers.linearizable import check
from squall.history import Op
from squall.report.linear_html import render


def _long_history_with_late_violation(n_writes: int, seed: int = 7) -> list[Op]:
    rng = random.Random(seed)
    ops: list[Op] = []
    value = None
    for i in range(n_writes):
        p = rng.randint(0, 4)
        value = i
        ops += [
            Op(process=p, type="invoke", f="write", value=value),
            Op(process=p, type="ok", f="write", value=value),
        ]
        if i == n_writes // 2:
            ops += [Op(process="nemesis", type="info", f="start-partition", value={"n1": ["n2"]})]
    ops += [Op(process="nemesis", type="info", f="stop-partition", value=None)]
    ops += [
        Op(process=9, type="invoke", f="read", value=None),
        Op(process=9, type="ok", f="read", value=-1),
    ]
    ops += [Op(process="nemesis", type="info", f="start-kill", value=["n3"])]
    return [o.with_(index=i, time=i * 1000) for i, o in enumerate(ops)]


def test_page_has_one_lane_per_process_and_marks_the_blocking_op() -> None:
    h = _long_history_with_late_violation(50)
    res = check("register", h)
    page = render(res, fault_bands(h))
    procs = {str(o["process"]) for o in res["counterexample"]["window_ops"]}
    assert all(f">process {p}<" in page for p in procs)
    assert "#ef9a9a" in page, "the op the search could not get past is drawn in red"
    assert "failing window" in page


def test_page_draws_fault_bands_inside_the_window() -> None:
    h = _long_history_with_late_violation(50)
    page = render(check("register", h), fault_bands(h))
    assert ">kill<" in page, "the kill that started after the failing read is drawn as a band"


def test_page_stays_small_for_a_long_history() -> None:
    h = _long_history_with_late_violation(20_000)
    res = check("register", h)
    page = render(res, fault_bands(h))
    assert res["valid"] is False
    assert len(page) < 100_000, f"page is {len(page)} bytes for a 40k-op history"
    assert len(re.findall("<rect", page)) < 400


def test_fault_bands_are_in_history_positions() -> None:
    h = _long_history_with_late_violation(10)
    [part, kill] = fault_bands(h)
    assert part["fault"] == "partition" and h[part["start"]].f == "start-partition"
    assert h[part["end"] - 1].f == "stop-partition"
    assert kill["unhealed"] is True
