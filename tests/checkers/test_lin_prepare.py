"""The compiled core's road from a whole history (squall_core.prepare) and the
Python road (to_operations, partition, _encode) are one conversion.

``check`` takes the compiled road whenever the core applies and the history
is plain; these tests hold it to the Python road: the same partitions in the
same order, the same columns value for value, the same whole result (every
field but the timing), and the Python road, with its errors, for every
history the compiled road declines.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest

from squall.checkers import _lin_core, linearizable
from squall.checkers.importers import load
from squall.checkers.linearizable import _columns, check, partition, to_operations
from squall.checkers.models import KV, get_model
from squall.history import HistoryError, Op
from tests.checkers.test_linear_porcupine import DATA, EXPECTED
from tests.checkers.test_linear_random import INFO_HEAVY_SEEDS, SEEDS, _generate

pytestmark = pytest.mark.skipif(
    not _lin_core.available(), reason="squall_core is not built here (./scripts/setup needs cargo)"
)
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from checker import kv_history, register_history  # noqa: E402


def _python_road(model: str, history: list[Op], **kw: Any) -> dict[str, Any]:
    saved = linearizable.prepare
    linearizable.prepare = lambda *a: None  # type: ignore[assignment]
    try:
        return check(model, history, parallel=False, **kw)
    finally:
        linearizable.prepare = saved


def _without_timing(res: dict[str, Any]) -> str:
    """The result as its JSON spells it (12 and 12.0 are == but print apart)."""
    return json.dumps({k: v for k, v in res.items() if k != "search_seconds"}, default=repr)


def _same_columns(model_name: str, history: list[Op], keyed: bool | None = None) -> None:
    """Partition by partition, the compiled road's columns are the Python road's."""
    model = get_model(model_name)
    prepared = _lin_core.prepare(model, history, keyed)
    assert prepared is not None, "this history should take the compiled road"
    parts = sorted(
        partition(model, to_operations(model, history, keyed)).items(), key=lambda kv: len(kv[1])
    )
    assert prepared.keys() == [k for k, _ in parts]
    assert prepared.sizes() == [len(ops) for _, ops in parts]
    where = {id(op): pos for pos, op in enumerate(history)}
    for i, (_, ops) in enumerate(parts):
        cols = _columns(model, ops)
        fs, a, b, out, table = _lin_core._encode(model, cols[0], cols[1])  # type: ignore[misc]
        assert prepared.columns(i) == (fs, a, b, out, cols[2], cols[3], cols[4])
        assert prepared.values(i) == table
        assert prepared.pairs(i) == [
            (o.call, -1 if o.complete is None else where[id(o.complete)]) for o in ops
        ]


def _histories() -> list[tuple[str, list[Op]]]:
    out: list[tuple[str, list[Op]]] = []
    if EXPECTED.exists():
        exp = json.loads(EXPECTED.read_text())
        out += [("cas-register", load(DATA / "etcd" / n)) for n in sorted(exp["etcd_linearizable"])]
        out += [("kv", load(DATA / "kv" / n)) for n in sorted(exp["kv_linearizable"])]
    out += [("cas-register", _generate(s)) for s in SEEDS[:150]]
    out += [("cas-register", _generate(s, info_rate=0.5, values=2)) for s in INFO_HEAVY_SEEDS[:50]]
    out += [("kv", kv_history(clients=8, ops=120, keys=3, seed=s)) for s in range(5)]
    out += [("register", register_history(400, keys=5, clients=6, seed=s)) for s in range(5)]
    return out


HISTORIES = _histories()


def test_both_roads_make_the_same_partitions_and_columns() -> None:
    for model, h in HISTORIES:
        _same_columns(model, h)


def test_both_roads_give_the_same_result() -> None:
    diffs = []
    for n, (model, h) in enumerate(HISTORIES):
        fast = check(model, h, parallel=False, core="rust")
        slow = _python_road(model, h, core="rust")
        assert fast["core"] == slow["core"] == "rust"
        if _without_timing(fast) != _without_timing(slow):
            diffs.append(n)
    assert not diffs, f"histories whose results differ between the roads: {diffs[:10]}"
    assert any(check(m, h)["valid"] is False for m, h in HISTORIES[:60])


def test_a_cut_history_gets_the_same_error_on_either_road() -> None:
    ops = [Op(process=0, type="ok", f="write", value=1, index=0)]
    msgs = []
    for road in (check, _python_road):
        with pytest.raises(HistoryError) as err:
            road("cas-register", ops)
        msgs.append(str(err.value))
    assert msgs[0] == msgs[1] and "completion without an invoke" in msgs[0]


def _op(i: int, process: Any, type_: str, f: str, value: Any, **kw: Any) -> Op:
    return Op(process=process, type=type_, f=f, value=value, index=i, time=i, **kw)


def _declined(model: str, history: list[Op], **kw: Any) -> None:
    """The compiled road declines this history, and check's answer is the Python road's."""
    assert _lin_core.prepare(get_model(model), history, kw.get("keyed")) is None
    assert _without_timing(check(model, history, parallel=False, **kw)) == _without_timing(
        _python_road(model, history, **kw)
    )


@pytest.mark.parametrize(
    "value, read",
    [(True, True), (1.0, 1), ([1, 2], [1, 2]), ({"a": 1}, {"a": 1}), (2**70, 2**70)],
    ids=["bool", "float", "list", "map", "bigint"],
)
def test_values_python_compares_its_own_way_take_the_python_road(value: Any, read: Any) -> None:
    # 1.0 == 1 and True == 1 in Python: only Python's dict interns them right.
    h = [
        _op(0, 0, "invoke", "write", value),
        _op(1, 0, "ok", "write", value),
        _op(2, 1, "invoke", "read", None),
        _op(3, 1, "ok", "read", read),
    ]
    _declined("register", h)
    assert check("register", h)["valid"] is True


def test_named_processes_and_odd_keys_take_the_python_road() -> None:
    named = [_op(0, "c1", "invoke", "write", 1), _op(1, "c1", "ok", "write", 1)]
    _declined("register", named)
    tuple_key = [_op(0, 0, "invoke", "write", [[1, 2], 5]), _op(1, 0, "ok", "write", [[1, 2], 5])]
    _declined("register", tuple_key)
    bool_key = [_op(0, 0, "invoke", "write", [True, 5]), _op(1, 0, "ok", "write", [True, 5])]
    _declined("register", bool_key)


def test_nemesis_ops_aliases_map_cas_and_failed_preconditions_take_the_compiled_road() -> None:
    h = [
        _op(0, "nemesis", "invoke", "kill", None),
        _op(1, 0, "invoke", "create", ["t1", "PENDING"]),
        _op(2, 0, "ok", "create", ["t1", "PENDING"]),
        _op(3, "nemesis", "info", "kill", "n1"),
        _op(4, 1, "invoke", "transition", ["t1", {"from": "PENDING", "to": "RUNNING"}]),
        _op(5, 2, "invoke", "transition", ["t1", {"from": "PENDING", "to": "KILLED"}]),
        _op(6, 1, "ok", "transition", ["t1", {"from": "PENDING", "to": "RUNNING"}]),
        _op(
            7,
            2,
            "fail",
            "transition",
            ["t1", {"from": "PENDING", "to": "KILLED"}],
            error="precondition_failed",
        ),
        _op(8, 3, "invoke", "read", ["t1", None]),
        _op(9, 4, "invoke", "set", ["t2", "LOST"]),
        _op(10, 3, "ok", "read", ["t1", "RUNNING"]),
        _op(11, 4, "info", "set", ["t2", "LOST"], error="timeout"),
        _op(12, 5, "invoke", "read", ["t2", None]),
        _op(13, 5, "fail", "read", ["t2", None], error="unavailable"),
    ]
    _same_columns("task-state", h)
    fast = check("task-state", h, parallel=False)
    assert _without_timing(fast) == _without_timing(_python_road("task-state", h))
    assert fast["valid"] is True and fast["partitions"] == 2


def test_kv_values_that_are_not_strings_take_the_python_road() -> None:
    h = [
        _op(0, 0, "invoke", "put", ["k", 5]),
        _op(1, 0, "ok", "put", ["k", 5]),
        _op(2, 1, "invoke", "get", ["k", None]),
        _op(3, 1, "ok", "get", ["k", 5]),
    ]
    assert _lin_core.prepare(KV, h, None) is None
    assert check("kv", h)["core"] == "python"


def _mixed_history(seed: int) -> list[Op]:
    """Keys 1 and "1" (distinct), values None, ints and strs side by side,
    nemesis ops, failed and indeterminate ops, aliases: what the roads
    must split and intern alike."""
    rng = random.Random(seed)
    keys: list[Any] = [1, "1", 2, "a"]
    values: list[Any] = [None, 0, 1, "1", "x", -(2**40)]
    fs = ["read", "write", "cas", "create", "transition", "set"]
    out: list[Op] = []
    open_: dict[int, Op] = {}
    proc = 0
    for _ in range(rng.randint(4, 40)):
        if rng.random() < 0.1:
            out.append(_op(len(out), "nemesis", "info", "kill", None))
            continue
        if open_ and (rng.random() < 0.5 or len(open_) >= 4):
            p = rng.choice(list(open_))
            inv = open_.pop(p)
            kind = rng.choices(["ok", "fail", "info"], [0.7, 0.15, 0.15])[0]
            key, arg = inv.value
            if inv.f == "read":
                got = [key, rng.choice(values)] if kind == "ok" else inv.value
            else:
                got = inv.value
            error = rng.choice(["precondition_failed", "timeout"]) if kind == "fail" else None
            out.append(_op(len(out), p, kind, inv.f, got, error=error))
            continue
        f = rng.choice(fs)
        key = rng.choice(keys)
        if f == "read":
            arg: Any = None
        elif f in ("cas", "transition"):
            frm, to = rng.choice(values), rng.choice(values)
            arg = {"from": frm, "to": to} if rng.random() < 0.5 else [frm, to]
        else:
            arg = rng.choice(values)
        inv = _op(len(out), proc, "invoke", f, [key, arg])
        open_[proc] = inv
        out.append(inv)
        proc += 1
    return out


def test_both_roads_agree_on_mixed_keys_values_and_aliases() -> None:
    took = 0
    for seed in range(300):
        h = _mixed_history(seed)
        if _lin_core.prepare(get_model("task-state"), h, None) is not None:
            took += 1
            _same_columns("task-state", h)
        fast = check("task-state", h, parallel=False)
        assert _without_timing(fast) == _without_timing(_python_road("task-state", h)), seed
    assert took > 250, f"the compiled road took only {took} of 300"


def test_a_verdict_without_its_explanation_is_the_same_verdict() -> None:
    invalid = 0
    for model, h in HISTORIES:
        for core in ("rust", "python"):
            full = check(model, h, parallel=False, core=core)
            bare = check(model, h, parallel=False, core=core, explain=False)
            assert "counterexample" not in bare
            same = ("valid", "failed_key", "states_explored", "partitions_checked")
            assert {k: bare.get(k) for k in same} == {k: full.get(k) for k in same}
            if full["valid"] is False:
                invalid += 1
                assert bare["why"].startswith("linearizability failed")
    assert invalid > 20
