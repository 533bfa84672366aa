"""The search's look-ahead (_lin_search._dead) prunes only dead configurations.

It abandons a configuration as soon as a read still open can no longer be
explained. Proven here the way the rest of the search is: on random kv
histories (get / put / append, where "explained" means "a prefix of the
read's result", the subtle case) against a brute-force enumerator written
from the definition, for both cores, with the look-ahead on and off; and on
the single-key shapes it was made for, where it must cut the work.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest

from squall.checkers import _lin_core
from squall.checkers.linearizable import _columns, check, partition, to_operations
from squall.checkers.models import KV
from squall.history import Op

CORES = ["python"] + (["rust"] if _lin_core.available() else [])
SEEDS = range(400)


def _kv_history(seed: int) -> list[Op]:
    """A small kv history on one or two keys: ops take effect at a random
    point of their interval on a simulated store, some time out (info), and a
    third of the histories get one read corrupted."""
    rng = random.Random(seed)
    keys = ["a"] if rng.random() < 0.6 else ["a", "b"]
    store: dict[str, str] = {}
    busy: dict[int, dict[str, Any]] = {}
    free = list(range(rng.randint(2, 4)))
    ops: list[Op] = []
    started, n_ops = 0, rng.randint(3, 7)
    while started < n_ops or busy:
        choices = [("invoke", p) for p in free if started < n_ops]
        choices += [(a, p) for p in busy for a in ("apply", "complete")]
        action, p = rng.choice(choices)
        if action == "invoke":
            f = rng.choice(["get", "get", "put", "append", "append"])
            arg = None if f == "get" else rng.choice(["x", "y", "xy", ""])
            busy[p] = {"f": f, "k": rng.choice(keys), "arg": arg, "applied": False, "out": None}
            free.remove(p)
            started += 1
            ops.append(Op(process=p, type="invoke", f=f, value=[busy[p]["k"], arg]))
        elif action == "apply" and not busy[p]["applied"]:
            st = busy[p]
            st["applied"] = True
            cur = store.get(st["k"], "")
            if st["f"] == "get":
                st["out"] = cur
            else:
                store[st["k"]] = st["arg"] if st["f"] == "put" else cur + st["arg"]
        elif action == "complete":
            st = busy.pop(p)
            free.append(p)
            if not st["applied"] and st["f"] != "get" and rng.random() < 0.5:
                ops.append(Op(process=p, type="info", f=st["f"], value=[st["k"], st["arg"]]))
                free[-1] = max(free + list(busy)) + 1  # a timed-out process is not reused
                continue
            if not st["applied"]:  # it takes effect now, at its completion
                cur = store.get(st["k"], "")
                if st["f"] == "get":
                    st["out"] = cur
                else:
                    store[st["k"]] = st["arg"] if st["f"] == "put" else cur + st["arg"]
            out = st["out"] if st["f"] == "get" else st["arg"]
            ops.append(Op(process=p, type="ok", f=st["f"], value=[st["k"], out]))
    if rng.random() < 1 / 3:
        gets = [i for i, o in enumerate(ops) if o.type == "ok" and o.f == "get"]
        if gets:
            i = rng.choice(gets)
            wrong = rng.choice(["", "x", "y", "xy", "yx", "xxy", "yy"])
            ops[i] = ops[i].with_(value=[ops[i].value[0], wrong])
    return [o.with_(index=i, time=i) for i, o in enumerate(ops)]


def _kv_brute_force(history: list[Op]) -> bool:
    """Is there an order of every completed op, and of any subset of the
    timed-out ones, that respects real time and that a dict of strings accepts?"""
    pending: dict[Any, int] = {}
    ops: list[tuple[Op, Op | None]] = []
    for i, o in enumerate(history):
        if o.type == "invoke":
            pending[o.process] = i
        else:
            inv = history[pending.pop(o.process)]
            ops.append((inv, o if o.type == "ok" else None))
    ops += [(history[i], None) for i in pending.values()]
    call = [inv.index for inv, _ in ops]
    ret = [comp.index if comp is not None else None for _, comp in ops]

    def dfs(done: frozenset[int], store: dict[str, str]) -> bool:
        left = [i for i in range(len(ops)) if i not in done]
        if all(ret[i] is None for i in left):
            return True  # what is left timed out, and may never have happened
        for i in left:
            if any(ret[j] is not None and ret[j] < call[i] for j in left if j != i):
                continue  # some op still left returned before i was called
            inv, comp = ops[i]
            k, arg = inv.value
            cur = store.get(k, "")
            if inv.f == "get":
                if comp is not None and comp.value[1] != cur:
                    continue
                nstore = store
            else:
                nstore = {**store, k: arg if inv.f == "put" else cur + arg}
            if dfs(done | {i}, nstore):
                return True
        return False

    return dfs(frozenset(), {})


@pytest.fixture(scope="module")
def histories() -> list[tuple[int, list[Op], bool]]:
    return [(s, h, _kv_brute_force(h)) for s in SEEDS for h in [_kv_history(s)]]


def test_kv_histories_cover_both_verdicts_and_timeouts(
    histories: list[tuple[int, list[Op], bool]],
) -> None:
    valid = sum(1 for _, _, bf in histories if bf)
    assert 60 <= valid <= len(histories) - 60, f"{valid} of {len(histories)} valid: one-sided"
    assert any(o.type == "info" for _, h, _ in histories for o in h)


@pytest.mark.parametrize("core", CORES)
def test_kv_search_agrees_with_brute_force(
    histories: list[tuple[int, list[Op], bool]], core: str
) -> None:
    wrong = [
        (seed, bf, got)
        for seed, h, bf in histories
        if (got := check("kv", h, core=core, parallel=False)["valid"]) is not bf
    ]
    assert not wrong, f"(seed, brute force, checker): {wrong[:10]}"


@pytest.mark.parametrize("core", CORES)
def test_the_look_ahead_changes_no_verdict_and_only_cuts_work(
    histories: list[tuple[int, list[Op], bool]], core: str
) -> None:
    # Fewer configurations is not a theorem (a dead configuration is not
    # cached, and another path may reach its descendants, which the plain
    # search would have cached), but it holds on every one of these.
    pruned_somewhere = False
    for seed, h, _ in histories:
        for part in partition(KV, _ops(h)).values():
            cols = _columns(KV, part)
            limits = _lin_core.Limits(core=core)
            on = _lin_core.search_columns(KV, cols, limits, look=True)
            off = _lin_core.search_columns(KV, cols, limits, look=False)
            assert on.valid is off.valid, (seed, on, off)
            assert on.states <= off.states, (seed, on.states, off.states)
            pruned_somewhere |= on.states < off.states
    assert pruned_somewhere, "the look-ahead never fired: the test would prove nothing"


def _ops(history: list[Op]) -> list[Any]:
    return to_operations(KV, history)


def _bench_kv_history(**kw: Any) -> list[Op]:
    """bench/checker.py's generator (closed-loop clients on a simulated store)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from checker import kv_history  # type: ignore[import-not-found]

    return kv_history(**kw)


def test_a_slow_single_key_history_is_decided_with_far_less_work() -> None:
    # 10 clients appending to one key, one op in ten slow (bench/checker.py's
    # generator): the plain search explores over ten times as many configurations.
    h = _bench_kv_history(clients=10, ops=120, keys=1, seed=10)
    cols = _columns(KV, _ops(h))
    limits = _lin_core.Limits(core=CORES[-1])
    on = _lin_core.search_columns(KV, cols, limits, look=True)
    off = _lin_core.search_columns(KV, cols, limits, look=False)
    assert on.valid is True and off.valid is True
    assert on.states * 10 < off.states, (on.states, off.states)


@pytest.mark.parametrize("core", CORES)
def test_a_counterexample_is_given_where_only_the_look_ahead_can_finish(core: str) -> None:
    # 20 concurrent timed-out writes and a read of a value none writes: the
    # plain search's 2^20 configurations are past the counterexample re-run's
    # bound, so the look-ahead's prefix is used, and it names the read.
    from tests.checkers.test_linearizable import H

    n = 20
    events: list[tuple[Any, ...]] = [(p, "invoke", "write", p) for p in range(n)]
    events += [(100, "invoke", "read", None), (100, "ok", "read", 99)]
    events += [(p, "info", "write", p) for p in range(n)]
    res = check("register", H(*events), core=core, parallel=False)
    assert res["valid"] is False and res["states_explored"] <= n
    assert res["counterexample"]["blocking"]["desc"] == "read() -> 99", res["counterexample"]


def _crowded(corrupt: bool) -> list[Op]:
    """20 clients putting and getting one key (over LOOK_CROWD open at once,
    so the search looks at nearly every read), optionally with one read wrong."""
    h = _bench_kv_history(clients=20, ops=240, keys=1, seed=20, mix=(0.5, 0.5, 0))
    if corrupt:
        i = [n for n, o in enumerate(h) if o.type == "ok" and o.f == "get"][60]
        h[i] = h[i].with_(value=[h[i].value[0], "x 99 99 y"])
    return h


@pytest.mark.parametrize("corrupt", [False, True])
def test_a_crowded_single_key_history_gets_the_same_answer_from_every_search(
    corrupt: bool,
) -> None:
    h = _crowded(corrupt)
    cols = _columns(KV, _ops(h))
    on = [_lin_core.search_columns(KV, cols, _lin_core.Limits(core=c)) for c in CORES]
    assert {o.valid for o in on} == {not corrupt}, on
    assert len({o.states for o in on}) == 1, "the cores explore alike"
    # Crowded, so nearly every read is looked at: under a thousand
    # configurations; looking at 16 only, as for an uncrowded key, took 59 k.
    assert on[0].states < 5_000, on[0].states
    # Without the look-ahead: over 1 M configurations (a minute in Python), so bounded.
    bound = _lin_core.Limits(core=CORES[-1], max_states=20 * on[0].states)
    off = _lin_core.search_columns(KV, cols, bound, look=False)
    assert off.valid in (not corrupt, "unknown") and off.states > 10 * on[0].states
    full = [check("kv", h, core=core, parallel=False) for core in CORES]
    assert all(r["valid"] is (not corrupt) for r in full)
    assert len({str(r.get("counterexample")) for r in full}) == 1, "the same counterexample"
