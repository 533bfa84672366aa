"""The search agrees with a brute-force enumerator on hundreds of random histories.

The enumerator is written from the definition, sharing nothing with the
checker but the history format: it tries every order of the operations that
respects real time (a completion before an invoke orders the two), where an
indeterminate op may also be left out, and replays each order on a plain
dict of registers.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from squall.checkers.linearizable import check
from squall.history import Op

SEEDS = range(400)
INFO_HEAVY_SEEDS = range(10_000, 10_200)  # identical indeterminate ops are common here


def _generate(seed: int, info_rate: float = 0.12, values: int = 3) -> list[Op]:
    """A small history of a cas register (one or two keys) with info and fail ops.

    Outputs come from a simulated register, so many histories are valid; a
    third of them get one read corrupted, so many are not. A high
    ``info_rate`` with few ``values`` makes identical indeterminate ops common.
    """
    rng = random.Random(seed)
    keys = ["a"] if rng.random() < 0.5 else ["a", "b"]
    procs = rng.randint(2, 4)
    n_ops = rng.randint(3, 7)
    actual: dict[str, Any] = {}
    busy: dict[int, dict[str, Any]] = {}
    free = list(range(procs))
    next_proc = procs
    ops: list[Op] = []
    started = 0
    while started < n_ops or busy:
        choices = [("invoke", p) for p in free if started < n_ops] + [
            (a, p) for p in busy for a in ("apply", "complete")
        ]
        action, p = rng.choice(choices)
        if action == "invoke":
            f = rng.choice(["read", "write", "cas"])
            k = rng.choice(keys)
            top = values - 1
            arg = (
                None
                if f == "read"
                else rng.randint(0, top)
                if f == "write"
                else [rng.choice([None, *range(values)]), rng.randint(0, top)]
            )
            busy[p] = {"f": f, "k": k, "arg": arg, "applied": False, "result": None}
            free.remove(p)
            started += 1
            ops.append(Op(process=p, type="invoke", f=f, value=[k, arg]))
        elif action == "apply":
            st = busy[p]
            if not st["applied"]:
                st["applied"] = True
                cur = actual.get(st["k"])
                if st["f"] == "read":
                    st["result"] = cur
                elif st["f"] == "write":
                    actual[st["k"]] = st["arg"]
                else:
                    st["result"] = cur == st["arg"][0]
                    if st["result"]:
                        actual[st["k"]] = st["arg"][1]
        else:
            st = busy[p]
            if not st["applied"] and rng.random() < 0.8:
                continue  # most ops take effect before they complete
            del busy[p]
            if not st["applied"] or rng.random() < info_rate:
                ops.append(
                    Op(
                        process=p,
                        type="info",
                        f=st["f"],
                        value=[st["k"], st["arg"]],
                        error="timeout",
                    )
                )
                free.append(next_proc)  # a process whose op ended info is never reused
                next_proc += 1
                continue
            free.append(p)
            if st["f"] == "read":
                ops.append(Op(process=p, type="ok", f="read", value=[st["k"], st["result"]]))
            elif st["f"] == "cas" and not st["result"]:
                ops.append(
                    Op(
                        process=p,
                        type="fail",
                        f="cas",
                        value=[st["k"], st["arg"]],
                        error="precondition_failed",
                    )
                )
            else:
                ops.append(Op(process=p, type="ok", f=st["f"], value=[st["k"], st["arg"]]))
    if rng.random() < 1 / 3:
        reads = [i for i, o in enumerate(ops) if o.type == "ok" and o.f == "read"]
        if reads:
            i = rng.choice(reads)
            ops[i] = ops[i].with_(value=[ops[i].value[0], rng.choice([None, 0, 1, 2, 7])])
    return [o.with_(index=i, time=i) for i, o in enumerate(ops)]


def _brute_force(history: list[Op]) -> bool:
    """Is there an order of all ok/fail ops (and any subset of info ops) that respects
    real time and that sequential registers accept?"""
    pending: dict[Any, int] = {}
    ops: list[dict[str, Any]] = []
    for i, o in enumerate(history):
        if o.type == "invoke":
            pending[o.process] = i
            continue
        inv = history[pending.pop(o.process)]
        if o.type == "fail" and o.error != "precondition_failed":
            continue
        ops.append(
            {"inv": inv, "comp": o, "call": inv.index, "ret": o.index if o.type != "info" else None}
        )
    for i in pending.values():
        ops.append({"inv": history[i], "comp": None, "call": i, "ret": None})

    def accepts(op: dict[str, Any], regs: dict[str, Any]) -> bool:
        k, arg = op["inv"].value
        comp = op["comp"]
        cur = regs.get(k)
        f = op["inv"].f
        if comp is None or comp.type == "info":
            if f == "write" or (f == "cas" and cur == arg[0]):
                regs[k] = arg if f == "write" else arg[1]
            return True
        if f == "read":
            return comp.value[1] == cur
        if f == "write":
            regs[k] = arg
            return True
        if comp.type == "fail":
            return cur != arg[0]
        if cur != arg[0]:
            return False
        regs[k] = arg[1]
        return True

    def dfs(done: frozenset[int], regs: dict[str, Any]) -> bool:
        left = [i for i in range(len(ops)) if i not in done]
        if all(ops[i]["ret"] is None for i in left):
            return True  # the indeterminate ops left may never have happened
        for i in left:
            # i may go next only if no other op left had to precede it
            if any(
                ops[j]["ret"] is not None and ops[j]["ret"] < ops[i]["call"] for j in left if j != i
            ):
                continue
            nregs = dict(regs)
            if accepts(ops[i], nregs) and dfs(done | {i}, nregs):
                return True
        return False

    return dfs(frozenset(), {})


@pytest.fixture(scope="module")
def verdicts() -> list[tuple[int, bool, Any]]:
    out = []
    for seed in SEEDS:
        h = _generate(seed)
        out.append((seed, _brute_force(h), check("cas-register", h, keyed=True)["valid"]))
    for seed in INFO_HEAVY_SEEDS:
        h = _generate(seed, info_rate=0.5, values=2)
        out.append((seed, _brute_force(h), check("cas-register", h, keyed=True)["valid"]))
    return out


def test_search_agrees_with_brute_force_on_random_histories(
    verdicts: list[tuple[int, bool, Any]],
) -> None:
    disagree = [(seed, bf, got) for seed, bf, got in verdicts if bf is not got]
    assert not disagree, f"(seed, brute force, checker) disagreements: {disagree[:10]}"


def test_random_histories_cover_both_verdicts(verdicts: list[tuple[int, bool, Any]]) -> None:
    valid = sum(1 for _, bf, _ in verdicts if bf)
    assert 40 <= valid <= len(verdicts) - 40, (
        f"only {valid} of {len(verdicts)} valid: the test would be one-sided"
    )


def test_random_histories_include_info_and_fail_ops() -> None:
    types = {o.type for seed in SEEDS for o in _generate(seed)}
    assert {"info", "fail", "ok"} <= types


def test_counterexample_prefix_replays_to_the_reported_state() -> None:
    from squall.checkers.models import CAS_REGISTER, UNKNOWN, freeze

    checked = 0
    for seed in SEEDS:
        res = check("cas-register", _generate(seed), keyed=True)
        if res["valid"] is not False:
            continue
        ce = res["counterexample"]
        assert ce["prefix_length"] == len(ce["prefix_tail"]), (
            "small histories show their whole prefix"
        )
        state = CAS_REGISTER.init
        for o in ce["prefix_tail"]:
            output = UNKNOWN if o["output"] == "?" else freeze(o["output"])
            ok, state = CAS_REGISTER.step(state, (o["f"], freeze(o["input"])), output)
            assert ok, f"seed {seed}: prefix op {o['desc']} is not accepted in order"
            assert CAS_REGISTER.describe_state(state) == o["state_after"]
        assert state == freeze(ce["state"]), f"seed {seed}"
        assert ce["unlinearizable"], f"seed {seed}: an invalid history names what could not go next"
        checked += 1
    assert checked >= 20
