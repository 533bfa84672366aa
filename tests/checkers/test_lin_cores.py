"""The compiled search and the Python one are the same search.

Both run on the brute-force-checked random histories and on Porcupine's
data, and must give the same verdict, the same failing key, the same
counterexample and the same count of configurations explored: the compiled
core is a port move for move, so any difference is a bug in one of them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from squall.checkers import _lin_core
from squall.checkers.importers import load
from squall.checkers.linearizable import check
from squall.checkers.models import Model, cas_register_step
from squall.history import Op
from tests.checkers.test_linear_porcupine import DATA, EXPECTED
from tests.checkers.test_linear_random import INFO_HEAVY_SEEDS, SEEDS, _generate

needs_core = pytest.mark.skipif(
    not _lin_core.available(), reason="squall_core is not built here (./scripts/setup needs cargo)"
)
SAME = ("valid", "states_explored", "failed_key", "counterexample", "partitions_checked")


def _both(model: str | Model, history: list[Op], **kw: Any) -> tuple[dict[str, Any], ...]:
    py = check(model, history, core="python", parallel=False, **kw)
    rs = check(model, history, core="rust", parallel=False, **kw)
    return py, rs


def _differences(py: dict[str, Any], rs: dict[str, Any]) -> dict[str, Any]:
    return {k: (py.get(k), rs.get(k)) for k in SAME if py.get(k) != rs.get(k)}


@needs_core
def test_cores_agree_on_every_random_history() -> None:
    histories = [_generate(s) for s in SEEDS]
    histories += [_generate(s, info_rate=0.5, values=2) for s in INFO_HEAVY_SEEDS]
    diffs = []
    for n, h in enumerate(histories):
        py, rs = _both("cas-register", h, keyed=True)
        if _differences(py, rs):
            diffs.append((n, _differences(py, rs)))
    assert not diffs, f"(history, differing fields) for the first few: {diffs[:3]}"


def _porcupine_cases() -> list[tuple[str, str, bool]]:
    if not EXPECTED.exists():
        return []
    exp = json.loads(EXPECTED.read_text())
    etcd = [("cas-register", f"etcd/{n}", v) for n, v in sorted(exp["etcd_linearizable"].items())]
    kv = [("kv", f"kv/{n}", v) for n, v in sorted(exp["kv_linearizable"].items())]
    return etcd + kv


@needs_core
@pytest.mark.skipif(not EXPECTED.exists(), reason=f"Porcupine test data not found at {DATA}")
@pytest.mark.parametrize(("model", "name", "expected"), _porcupine_cases() or [("kv", "-", True)])
def test_cores_agree_on_porcupine_data(model: str, name: str, expected: bool) -> None:
    py, rs = _both(model, load(DATA / name))
    assert rs["valid"] is expected
    assert not _differences(py, rs)


@needs_core
def test_compiled_core_ran_where_it_applies() -> None:
    # Without this, a core that silently fell back to Python would pass every test above.
    res = check("cas-register", _generate(3), keyed=True, core="rust")
    assert res["core"] == "rust"


def test_a_users_model_is_checked_by_the_python_search() -> None:
    mine = Model(
        name="mine",
        init=None,
        step=lambda s, i, o: cas_register_step(s, i, o),
        fs=frozenset({"read", "write", "cas"}),
        readonly=frozenset({"read"}),
    )
    h = [
        Op(process=0, type="invoke", f="write", value=1, index=0),
        Op(process=0, type="ok", f="write", value=1, index=1),
    ]
    assert check(mine, h)["core"] == "python"


@needs_core
def test_kv_values_that_are_not_strings_fall_back_to_python() -> None:
    # The compiled kv model concatenates strings only; 1 + 2 is Python's to judge.
    h = [
        Op(process=0, type="invoke", f="put", value=["k", 1], index=0),
        Op(process=0, type="ok", f="put", value=["k", 1], index=1),
        Op(process=0, type="invoke", f="append", value=["k", 2], index=2),
        Op(process=0, type="ok", f="append", value=["k", 2], index=3),
        Op(process=0, type="invoke", f="get", value=["k", None], index=4),
        Op(process=0, type="ok", f="get", value=["k", 3], index=5),
    ]
    res = check("kv", h)
    assert (res["valid"], res["core"]) == (True, "python")


@needs_core
def test_forcing_the_compiled_core_on_a_users_model_is_one_clear_error() -> None:
    mine = Model(
        name="mine",
        init=0,
        step=lambda s, i, o: (True, s),
        fs=frozenset({"read"}),
        readonly=frozenset({"read"}),
    )
    h = [
        Op(process=0, type="invoke", f="read", index=0),
        Op(process=0, type="ok", f="read", index=1),
    ]
    with pytest.raises(ValueError, match="use core 'auto'"):
        check(mine, h, core="rust")


@needs_core
def test_compiled_core_answers_unknown_when_its_byte_budget_runs_out() -> None:
    from tests.checkers.test_linearizable import _hard_history

    res = check("register", _hard_history(), max_bytes=64 << 10, core="rust")
    assert res["valid"] == "unknown"
    assert "memory budget" in res["unknown_reason"]


def _kv_history(seed: int) -> list[Op]:
    """Random single-key kv histories whose appends ("a", "b", "ab") make equal
    strings by different paths, the case the compiled kv model's hashing must get right."""
    import random

    rng = random.Random(seed)
    ops: list[Op] = []
    busy: dict[int, Op] = {}
    for _ in range(rng.randint(4, 9)):
        free = [p for p in range(3) if p not in busy]
        if free and (not busy or rng.random() < 0.6):
            p = rng.choice(free)
            f = rng.choice(["get", "put", "append", "append"])
            v = None if f == "get" else rng.choice(["a", "b", "ab", ""])
            busy[p] = Op(process=p, type="invoke", f=f, value=["k", v])
            ops.append(busy[p])
            continue
        p = rng.choice(list(busy))
        inv = busy.pop(p)
        if inv.f == "get":
            out = rng.choice(["", "a", "ab", "aab", "abab", "ba", "bab"])
            ops.append(Op(process=p, type="ok", f="get", value=["k", out]))
        else:
            ops.append(
                Op(process=p, type=rng.choice(["ok", "ok", "info"]), f=inv.f, value=inv.value)
            )
    for p, inv in busy.items():
        ops.append(
            Op(process=p, type="ok", f=inv.f, value=inv.value if inv.f != "get" else ["k", ""])
        )
    return [o.with_(index=i, time=i) for i, o in enumerate(ops)]


@needs_core
def test_cores_agree_on_kv_histories_whose_strings_meet_by_different_paths() -> None:
    diffs = []
    verdicts = set()
    for seed in range(300):
        py, rs = _both("kv", _kv_history(seed))
        verdicts.add(py["valid"])
        if _differences(py, rs):
            diffs.append((seed, _differences(py, rs)))
    assert not diffs, f"(seed, differing fields): {diffs[:3]}"
    assert verdicts == {True, False}, "the histories must exercise both verdicts"


def test_an_exhausted_memory_budget_says_to_raise_the_budget() -> None:
    from tests.checkers.test_linearizable import _hard_history

    res = check("register", _hard_history(), max_bytes=64 << 10)
    assert "raise the memory budget" in res["why"]
