"""The linearizability search: semantics of ok/fail/info, bounds, partitions, counterexamples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from squall.checkers import _lin_core
from squall.checkers.base import CheckContext
from squall.checkers.linearizable import check, linearizable_checker
from squall.history import HistoryError, Op


def H(*events: tuple[Any, ...]) -> list[Op]:
    """History from (process, type, f, value[, error]) tuples, in order."""
    ops = []
    for i, e in enumerate(events):
        p, t, f, v = e[:4]
        ops.append(
            Op(
                process=p,
                type=t,
                f=f,
                value=v,
                error=e[4] if len(e) > 4 else None,
                index=i,
                time=i * 10,
            )
        )
    return ops


def test_sequential_write_then_read_is_linearizable() -> None:
    h = H(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (1, "invoke", "read", None),
        (1, "ok", "read", 1),
    )
    assert check("register", h)["valid"] is True


def test_stale_read_after_completed_write_is_not_linearizable() -> None:
    h = H(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (1, "invoke", "read", None),
        (1, "ok", "read", None),
    )
    assert check("register", h)["valid"] is False


def test_concurrent_read_may_see_old_or_new_value() -> None:
    for seen in (None, 1):
        h = H(
            (0, "invoke", "write", 1),
            (1, "invoke", "read", None),
            (1, "ok", "read", seen),
            (0, "ok", "write", 1),
        )
        assert check("register", h)["valid"] is True, seen


def test_info_write_may_take_effect_long_after_it_was_invoked() -> None:
    h = H(
        (0, "invoke", "write", 1),
        (0, "info", "write", 1),
        (1, "invoke", "read", None),
        (1, "ok", "read", None),
        (2, "invoke", "read", None),
        (2, "ok", "read", 1),
    )
    assert check("register", h)["valid"] is True


def test_info_write_may_never_take_effect() -> None:
    h = H(
        (0, "invoke", "write", 1),
        (0, "info", "write", 1),
        (1, "invoke", "read", None),
        (1, "ok", "read", None),
    )
    assert check("register", h)["valid"] is True


def test_info_write_cannot_take_effect_before_its_invoke() -> None:
    h = H(
        (1, "invoke", "read", None),
        (1, "ok", "read", 1),
        (0, "invoke", "write", 1),
        (0, "info", "write", 1),
    )
    assert check("register", h)["valid"] is False


def test_unfinished_invoke_counts_as_indeterminate() -> None:
    h = H((0, "invoke", "write", 1), (1, "invoke", "read", None), (1, "ok", "read", 1))
    assert check("register", h)["valid"] is True


def test_failed_op_did_not_happen() -> None:
    h = H(
        (0, "invoke", "write", 1),
        (0, "fail", "write", 1, "not_leader"),
        (1, "invoke", "read", None),
        (1, "ok", "read", 1),
    )
    assert check("register", h)["valid"] is False


def test_precondition_failed_cas_observes_the_value() -> None:
    h = H(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (1, "invoke", "cas", [1, 2]),
        (1, "fail", "cas", [1, 2], "precondition_failed"),
    )
    assert check("cas-register", h)["valid"] is False


def test_nemesis_ops_are_ignored() -> None:
    h = H(
        ("nemesis", "invoke", "start-partition", None),
        (0, "invoke", "write", 1),
        ("nemesis", "info", "start-partition", {"n1": ["n2"]}),
        (0, "ok", "write", 1),
    )
    assert check("register", h)["valid"] is True


def test_keys_are_checked_independently() -> None:
    h = H(
        (0, "invoke", "write", ["a", 1]),
        (0, "ok", "write", ["a", 1]),
        (1, "invoke", "read", ["b", None]),
        (1, "ok", "read", ["b", None]),
        (1, "invoke", "read", ["a", None]),
        (1, "ok", "read", ["a", 1]),
    )
    res = check("register", h)
    assert res["valid"] is True and res["partitions"] == 2


def test_invalid_key_is_named_with_the_stuck_ops_and_state() -> None:
    h = H(
        (0, "invoke", "write", ["a", 1]),
        (0, "ok", "write", ["a", 1]),
        (0, "invoke", "write", ["b", 5]),
        (0, "ok", "write", ["b", 5]),
        (1, "invoke", "read", ["b", None]),
        (1, "ok", "read", ["b", 4]),
    )
    res = check("register", h)
    ce = res["counterexample"]
    assert res["valid"] is False and res["failed_key"] == "b" == ce["key"]
    assert ce["prefix_length"] == 1 and ce["state"] == 5
    assert [o["desc"] for o in ce["unlinearizable"]] == ["read() -> 4"]
    assert ce["blocking"]["invoke_index"] == 4


def test_completion_without_invoke_is_refused_naming_it() -> None:
    h = H((0, "invoke", "write", 1), (0, "ok", "write", 1), (3, "ok", "read", 1))
    with pytest.raises(HistoryError, match="op 2: .*completion without an invoke"):
        check("register", h)


def test_unknown_f_is_refused_naming_it() -> None:
    h = H((0, "invoke", "increment", 1), (0, "ok", "increment", 1))
    with pytest.raises(HistoryError, match="op 0: .*'increment' is unknown"):
        check("register", h)


def _hard_history(n: int = 16) -> list[Op]:
    """n concurrent indeterminate writes and reads no order can explain, which
    the search's look-ahead cannot see through either: exponential in n.

    Read 0, write 100, read 0 again: the write of 0 can take effect only once,
    so the second read is impossible, but each read on its own is explainable
    by a write still open, so only orders that have spent the write of 0 are
    seen to be dead, and every subset of the other writes is tried first."""
    events: list[tuple[Any, ...]] = [(p, "invoke", "write", p) for p in range(n)]
    events += [(100, "invoke", "read", None), (100, "ok", "read", 0)]
    events += [(101, "invoke", "write", 100), (101, "ok", "write", 100)]
    events += [(100, "invoke", "read", None), (100, "ok", "read", 0)]
    events += [(p, "info", "write", p) for p in range(n)]
    return H(*events)


@pytest.mark.parametrize("core", ["python", "rust"])
def test_a_read_no_open_write_can_explain_is_dead_at_once(core: str) -> None:
    # n concurrent indeterminate writes and a read of a value none writes:
    # 2^n configurations for the plain search, a handful with the look-ahead.
    if core == "rust" and not _lin_core.available():
        pytest.skip("squall_core is not built here")
    n = 16
    events: list[tuple[Any, ...]] = [(p, "invoke", "write", p) for p in range(n)]
    events += [(100, "invoke", "read", None), (100, "ok", "read", 99)]
    events += [(p, "info", "write", p) for p in range(n)]
    res = check("register", H(*events), core=core)
    assert res["valid"] is False
    assert res["states_explored"] <= n, res["states_explored"]


def test_time_limit_turns_into_unknown() -> None:
    res = check("register", _hard_history(), time_limit=0.05)
    assert res["valid"] == "unknown" and "time limit" in res["unknown_reason"]


def test_state_bound_turns_into_unknown_instead_of_exhausting_memory() -> None:
    res = check("register", _hard_history(), max_states=5000)
    assert res["valid"] == "unknown" and "memory" in res["unknown_reason"]


def _multi_key_history(bad_key: str | None) -> list[Op]:
    events: list[tuple[Any, ...]] = []
    for k in ("a", "b", "c", "d"):
        events += [
            (0, "invoke", "write", [k, 1]),
            (1, "invoke", "read", [k, None]),
            (0, "ok", "write", [k, 1]),
            (1, "ok", "read", [k, 2 if k == bad_key else 1]),
        ]
    return H(*events)


@pytest.mark.parametrize("bad_key", [None, "c"])
def test_process_pool_gives_the_same_verdict_as_sequential(bad_key: str | None) -> None:
    h = _multi_key_history(bad_key)
    seq = check("register", h, parallel=False)
    par = check("register", h, parallel=True)
    assert seq["valid"] is par["valid"] is (bad_key is None)
    if bad_key:
        assert par["failed_key"] == seq["failed_key"] == bad_key


def test_a_run_with_an_invalid_history_gets_a_linear_html_page(tmp_path: Path) -> None:
    from squall.report.linear_html import write_for_run

    history = _multi_key_history("c")
    res = linearizable_checker("register")(CheckContext(history=history, run_dir=tmp_path))
    assert res["valid"] is False
    assert not (tmp_path / "linear.html").exists(), "a checker writes no files"
    write_for_run(tmp_path, {"linearizable": res}, history)
    page = (tmp_path / "linear.html").read_text()
    assert "read() -&gt; 2" in page
    assert res["html"].endswith("linear.html")


def test_a_run_with_a_valid_history_gets_no_page(tmp_path: Path) -> None:
    from squall.report.linear_html import write_for_run

    history = _multi_key_history(None)
    res = linearizable_checker("register")(CheckContext(history=history, run_dir=tmp_path))
    assert res["valid"] is True
    assert write_for_run(tmp_path, {"linearizable": res}, history) is None
    assert not (tmp_path / "linear.html").exists()


def test_pool_stops_the_other_workers_once_a_partition_is_invalid() -> None:
    hard = [o.with_(value=["a", o.value]) for o in _hard_history(20)]
    bad = H(
        (200, "invoke", "write", ["b", 1]),
        (200, "ok", "write", ["b", 1]),
        (201, "invoke", "read", ["b", None]),
        (201, "ok", "read", ["b", 2]),
    )
    h = [o.with_(index=i) for i, o in enumerate(hard + bad)]
    res = check("register", h, parallel=True, keyed=True)
    assert res["valid"] is False and res["failed_key"] == "b"
    assert res["partitions_checked"] == 1, "the hard key's search was not waited for"


def test_partitions_left_when_the_time_is_up_make_the_verdict_unknown() -> None:
    res = check("register", _multi_key_history(None), time_limit=0.0, parallel=False)
    assert res["valid"] == "unknown" and res["partitions_checked"] < res["partitions"]


def test_invalid_result_says_why_naming_key_op_and_state() -> None:
    res = check("register", _multi_key_history("c"))
    assert (
        res["why"]
        == "linearizability failed on key c: read() -> 2 cannot follow write(1) -> ok (the register held 1)"
    )


def test_unknown_result_says_why_and_what_to_do() -> None:
    res = check("register", _hard_history(), time_limit=0.05)
    assert "time limit" in res["why"] and "raise the time limit" in res["why"]


STEPS_IN_THIS_PROCESS = [0]


def counting_register_step(state: Any, inp: Any, out: Any) -> tuple[bool, Any]:
    """A user's own model step: the register's, counting calls made in this process."""
    from squall.checkers.models import register_step

    STEPS_IN_THIS_PROCESS[0] += 1
    return register_step(state, inp, out)


def test_a_users_model_is_checked_by_the_pool_as_a_value() -> None:
    from dataclasses import replace

    from squall.checkers.models import REGISTER

    # Looked up again by name in the workers, an unregistered model killed them all.
    custom = replace(REGISTER, name="counter", step=counting_register_step)
    STEPS_IN_THIS_PROCESS[0] = 0
    res = check(custom, _multi_key_history(None), parallel=True)
    assert res["valid"] is True
    assert res["partitions_checked"] == res["partitions"]
    assert STEPS_IN_THIS_PROCESS[0] == 0, "the partitions were checked here, not by the workers"
    bad = check(custom, _multi_key_history("c"), parallel=True)
    assert bad["failed_key"] == "c"


def test_a_model_that_cannot_be_pickled_is_checked_in_process() -> None:
    from dataclasses import replace

    from squall.checkers.models import REGISTER, register_step

    custom = replace(REGISTER, name="closure", step=lambda s, i, o: register_step(s, i, o))
    res = check(custom, _multi_key_history("c"), parallel=True)
    assert res["valid"] is False
    assert res["failed_key"] == "c"
    res = check(custom, _multi_key_history(None), parallel=True)
    assert res["valid"] is True
    assert res["partitions_checked"] == res["partitions"]


def _register_run(n_ops: int, seed: int, info_every: int) -> list[Op]:
    """Five clients writing and reading one register; every ``info_every``-th write times out."""
    import random

    rng = random.Random(seed)
    value, busy, out, next_proc, writes = None, {}, [], 5, 0
    free = list(range(5))
    while len(out) < 2 * n_ops or busy:
        if free and len(out) < 2 * n_ops and (not busy or rng.random() < 0.5):
            p = free.pop(rng.randrange(len(free)))
            f = rng.choice(["read", "write"])
            busy[p] = (f, rng.randrange(5) if f == "write" else None)
            out.append(Op(process=p, type="invoke", f=f, value=busy[p][1]))
            continue
        p = rng.choice(list(busy))
        f, v = busy.pop(p)
        if f == "write":
            value, writes = v, writes + 1
            if writes % info_every == 0:
                out.append(Op(process=p, type="info", f=f, value=v))
                free.append(next_proc)
                next_proc += 1
                continue
        out.append(Op(process=p, type="ok", f=f, value=v if f == "write" else value))
        free.append(p)
    out += [
        Op(process=99, type="invoke", f="read", value=None),
        Op(process=99, type="ok", f="read", value=12345),
    ]
    return [o.with_(index=i) for i, o in enumerate(out)]


def test_old_timed_out_writes_do_not_multiply_the_search() -> None:
    # A single key, a dozen timed-out writes, and a read no order explains at
    # the very end: every configuration must be refuted. Counting the same
    # configuration again for each set of timed-out writes spent on the way
    # (long overwritten) needs more than the bound given here.
    res = check("register", _register_run(1500, seed=3, info_every=60), max_states=150_000)
    assert res["valid"] is False, res.get("unknown_reason")
