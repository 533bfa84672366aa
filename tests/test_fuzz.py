"""Fuzzing the readers of histories and run files: whatever the input, a verdict or a
one-line error, never a traceback (bench/fuzz.py runs the long version and counts hangs)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from squall.history import HistoryError, parse_jsonl
from tests.fuzzing import (
    ACCEPTED,
    CLEAN,
    VERDICT,
    judge_history,
    judge_run_dir,
    judge_run_files,
    mutated_history,
    mutated_run_files,
    seed_history,
    to_jsonl,
)

FAST = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
pytestmark = pytest.mark.timeout(300)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=10,
)
op_like = st.fixed_dictionaries(
    {},
    optional={
        k: json_values
        | st.sampled_from(["invoke", "ok", "fail", "info", "read", "write", "cas", "nemesis"])
        for k in ("index", "time", "process", "type", "f", "value", "node", "error")
    },
)


@FAST
@given(st.binary(max_size=600))
def test_any_bytes_read_as_a_history_are_ops_or_a_history_error(data: bytes) -> None:
    try:
        parse_jsonl(data, skip_damaged=True)
    except HistoryError:
        pass


@FAST
@given(st.integers(min_value=0, max_value=2**32))
def test_a_mutated_history_gets_a_verdict_or_a_clean_error(seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        assert judge_history(mutated_history(seed), Path(tmp)) in (VERDICT, CLEAN)


@FAST
@given(st.lists(op_like, max_size=12))
def test_ops_with_any_field_values_get_a_verdict_or_a_clean_error(ops: list) -> None:
    data = b"".join(json.dumps(o, allow_nan=True).encode() + b"\n" for o in ops)
    with tempfile.TemporaryDirectory() as tmp:
        assert judge_history(data, Path(tmp)) in (VERDICT, CLEAN)


@settings(FAST, max_examples=60)
@given(st.integers(min_value=0, max_value=2**32))
def test_mutated_run_files_are_accepted_or_a_clean_error(seed: int) -> None:
    test, schedule = mutated_run_files(seed)
    with tempfile.TemporaryDirectory() as tmp:
        assert judge_run_files(test, schedule, Path(tmp)) in (ACCEPTED, CLEAN)


@settings(FAST, max_examples=25)
@given(st.integers(min_value=0, max_value=2**32))
def test_a_mutated_run_dir_gets_a_verdict_or_a_clean_error(seed: int) -> None:
    test, _ = mutated_run_files(seed)
    with tempfile.TemporaryDirectory() as tmp:
        assert judge_run_dir(test, mutated_history(seed), Path(tmp)) in (VERDICT, CLEAN)


def test_the_seed_history_is_a_verdict(tmp_path: Path) -> None:
    import random

    assert judge_history(to_jsonl(seed_history(random.Random(1))), tmp_path) == VERDICT
