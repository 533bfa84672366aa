"""Perf plots: real PNGs drawn into the run directory."""

from __future__ import annotations

from pathlib import Path

from synth_run import realistic_history

from squall.checkers.base import CheckContext
from squall.checkers.perf import LATENCY_PNG, RATE_PNG, check_perf

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_perf_draws_latency_and_rate_pngs_into_the_run_dir(tmp_path: Path) -> None:
    res = check_perf(
        CheckContext(history=realistic_history(), test={"name": "t"}, run_dir=tmp_path)
    )
    assert res["valid"] is True and res["plots"] == [LATENCY_PNG, RATE_PNG]
    for name in (LATENCY_PNG, RATE_PNG):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG_MAGIC), f"{name} is not a PNG"
        assert len(data) > 20_000, f"{name} is only {len(data)} bytes: nothing drawn?"


def test_perf_reports_latency_quantiles_per_f() -> None:
    res = check_perf(CheckContext(history=realistic_history()))
    assert set(res["latency_s"]) == {"read", "write", "cas"}
    assert res["latency_s"]["read"]["p50"] < res["latency_s"]["read"]["max"]
    assert 29.0 < res["span_s"] < 35.0


def test_perf_without_a_run_dir_draws_nothing_and_says_so() -> None:
    res = check_perf(CheckContext(history=realistic_history()))
    assert res["plots"] == [] and "no run directory" in res["note"]


def test_perf_draws_no_empty_plots_for_a_history_without_client_ops(tmp_path: Path) -> None:
    res = check_perf(CheckContext(history=[], run_dir=tmp_path))
    assert not (tmp_path / LATENCY_PNG).exists() and res["plots"] == []
    assert "no client operations" in res["note"]
