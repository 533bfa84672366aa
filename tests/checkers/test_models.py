"""The models' sequential semantics, one rule per test."""

from __future__ import annotations

import pickle

import pytest

from squall.checkers.models import CAS_REGISTER, KV, REGISTER, TASK_STATE, UNKNOWN, get_model


def test_register_read_must_return_the_last_write() -> None:
    assert REGISTER.step(3, ("read", None), 3) == (True, 3)
    assert REGISTER.step(3, ("read", None), 4)[0] is False


def test_register_write_sets_the_value() -> None:
    assert REGISTER.step(None, ("write", 5), True) == (True, 5)


def test_cas_register_starts_nil_and_cas_from_nil_succeeds() -> None:
    assert CAS_REGISTER.init is None
    assert CAS_REGISTER.step(None, ("cas", (None, 1)), True) == (True, 1)


def test_successful_cas_requires_matching_value() -> None:
    assert CAS_REGISTER.step(2, ("cas", (1, 3)), True)[0] is False


def test_failed_cas_observes_a_different_value() -> None:
    assert CAS_REGISTER.step(2, ("cas", (1, 3)), False) == (True, 2)
    assert CAS_REGISTER.step(1, ("cas", (1, 3)), False)[0] is False


def test_indeterminate_cas_takes_effect_only_if_precondition_holds() -> None:
    assert CAS_REGISTER.step(1, ("cas", (1, 3)), UNKNOWN) == (True, 3)
    assert CAS_REGISTER.step(2, ("cas", (1, 3)), UNKNOWN) == (True, 2)


def test_kv_missing_key_reads_empty_and_append_concatenates() -> None:
    ok, state = KV.step(KV.init, ("append", "x"), True)
    assert (ok, state) == (True, "x")
    assert KV.step(state, ("get", None), "x") == (True, "x")
    assert KV.step(state, ("put", "y"), True) == (True, "y")
    assert KV.step("", ("get", None), "x")[0] is False


def test_task_state_accepts_from_to_dicts_and_transition_alias() -> None:
    f, arg = TASK_STATE.prepare("transition", {"from": "PENDING", "to": "RUNNING"})
    assert (f, arg) == ("cas", ("PENDING", "RUNNING"))
    assert TASK_STATE.step("PENDING", (f, arg), True) == (True, "RUNNING")
    assert TASK_STATE.step("ASSIGNED", (f, arg), True)[0] is False


def test_unknown_f_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known: .*write"):
        REGISTER.prepare("cas", [1, 2])


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="cas-register"):
        get_model("cas-regster")


def test_values_are_made_hashable() -> None:
    assert KV.prepare("put", [1, [2]]) == ("put", (1, (2,)))


def test_models_and_unknown_survive_pickling_for_the_process_pool() -> None:
    assert pickle.loads(pickle.dumps(UNKNOWN)) is UNKNOWN
    assert pickle.loads(pickle.dumps(CAS_REGISTER)) == CAS_REGISTER


def test_describe_op_shows_input_and_output() -> None:
    assert CAS_REGISTER.describe_op(("cas", (1, 2)), False) == "cas(1 -> 2) -> failed"
    assert CAS_REGISTER.describe_op(("read", None), UNKNOWN) == "read() -> ?"
