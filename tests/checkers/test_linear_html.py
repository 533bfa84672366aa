"""The counterexample page: lanes with their nodes, the failing window, faults by their sides,
states before and after, and a bounded size whatever the history's length."""

from __future__ import annotations

import json
import random
import re

from squall.checkers.linearizable import check
from squall.history import Op
from squall.report.linear_html import page_data, render


def stale_read_history(n_writes: int, seed: int = 7) -> list[Op]:
    """Writes by five clients through n1, a partition cutting n3 off, then a read n3 served stale."""
    rng = random.Random(seed)
    ops: list[Op] = []
    for i in range(n_writes):
        p = rng.randint(0, 4)
        ops += [
            Op(process=p, type="invoke", f="write", value=i, node="n1"),
            Op(process=p, type="ok", f="write", value=i, node="n1"),
        ]
        if i == n_writes // 2:
            ops += [
                Op(process="nemesis", type="invoke", f="start-partition", value={}),
                Op(
                    process="nemesis",
                    type="ok",
                    f="start-partition",
                    value={
                        "targets": ["n1", "n2", "n3", "n4", "n5"],
                        "leader": "n3",
                        "grudge": {
                            "n3": ["n1", "n2", "n4", "n5"],
                            "n1": ["n3"],
                            "n2": ["n3"],
                            "n4": ["n3"],
                            "n5": ["n3"],
                        },
                    },
                ),
            ]
    ops += [
        Op(process=9, type="invoke", f="read", value=None),
        Op(process=9, type="ok", f="read", value=-1, node="n3"),
    ]
    ops += [
        Op(process="nemesis", type="invoke", f="stop-partition", value={}),
        Op(process="nemesis", type="ok", f="stop-partition", value={"targets": []}),
    ]
    return [o.with_(index=i, time=i * 1_000_000) for i, o in enumerate(ops)]


def test_each_op_carries_its_node_times_and_the_states_around_it() -> None:
    h = stale_read_history(50)
    res = check("register", h)
    data = page_data(res, h)
    stale = next(o for o in data["ops"] if o["f"] == "read")
    assert stale["node"] == "n3", "the page must say which node answered the stale read"
    assert stale["state_before"] == "49", "the register held 49 when the read could not follow"
    assert stale["time"] < stale["end_time"]
    linearized = [o for o in data["ops"] if o.get("state_after") is not None]
    assert linearized, "the prefix's ops carry the state after them"


def test_a_partition_in_the_window_is_named_by_its_sides() -> None:
    h = stale_read_history(50)
    faults = page_data(check("register", h), h)["faults"]
    assert [f["label"] for f in faults] == ["partition of n1,n2,n4,n5 | n3, leader n3 from 0.1s"]


def test_the_page_is_one_self_contained_file_with_its_data_and_script() -> None:
    h = stale_read_history(50)
    page = render(check("register", h), h)
    assert "<script src" not in page and "http" not in page.split("<script")[0], "no network"
    blob = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    assert blob is not None
    data = json.loads(blob.group(1).replace("<\\/", "</"))
    assert data["ops"], "the failing window's ops are embedded"
    assert "read() -&gt; -1" in page, "the unlinearizable op is listed in the static table too"


def test_the_page_stays_small_for_a_long_history() -> None:
    h = stale_read_history(50_000)
    res = check("register", h)
    assert res["valid"] is False
    page = render(res, h)
    assert len(page) < 150_000, f"page is {len(page)} bytes for a 100k-op history"
