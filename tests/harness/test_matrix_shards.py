"""A matrix split across runners: deterministic, balanced slices, and a merge that refuses
what does not make one whole matrix, and otherwise gives the table the unsharded run gives."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from squall.run.config import ConfigError
from squall.run.matrix import Case, load_suite, merge, plan, run_matrix
from squall.run.shard import Slice, deal, parse_slice

ROOT = Path(__file__).resolve().parents[2]


def _cases(limits: list[float]) -> list[Case]:
    return [Case(f"c{i}", {"time_limit": t}, True) for i, t in enumerate(limits)]


def test_every_unit_lands_in_exactly_one_slice() -> None:
    cases = load_suite(ROOT / "suites" / "matrix.yaml")
    seeds: list[int | None] = [1, 2]
    whole = [u.index for u in plan(cases, seeds)]
    for n in (1, 2, 3, 5):
        sliced = [u.index for k in range(1, n + 1) for u in plan(cases, seeds, Slice(k=k, n=n))]
        assert sorted(sliced) == whole, f"{n} slices"


def test_slices_are_the_same_every_time_they_are_computed() -> None:
    cases = load_suite(ROOT / "suites" / "matrix.yaml")
    first = [[u.index for u in plan(cases, [None], Slice(k=k, n=3))] for k in (1, 2, 3)]
    again = [[u.index for u in plan(cases, [None], Slice(k=k, n=3))] for k in (1, 2, 3)]
    assert first == again


def test_slices_are_balanced_by_expected_duration() -> None:
    costs = [100.0, 90.0, 50.0, 40.0, 30.0, 30.0, 20.0, 10.0]
    loads = [sum(costs[i] for i in s) for s in deal(costs, 2)]
    assert max(loads) - min(loads) <= 10.0, loads


def test_a_long_case_is_not_sliced_with_the_other_long_ones() -> None:
    cases = _cases([300, 300, 10, 10])
    one, two = (plan(cases, [None], Slice(k=k, n=2)) for k in (1, 2))
    assert {u.case.name for u in one} & {"c0", "c1"} != {"c0", "c1"}
    assert len(one) == len(two) == 2


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_a_bad_shard_is_refused_saying_how_to_write_it(text: str) -> None:
    with pytest.raises(ConfigError, match="K/N"):
        parse_slice(text)


def _summary(tmp: Path, name: str, k: int, n: int, **fp: str) -> Path:
    fingerprint = {"suite": "s1", "code": "c1", "seeds": [7], **fp}
    path = tmp / f"{name}.json"
    row = {
        "case": f"case{k}",
        "passed": True,
        "expected": True,
        "got": True,
        "caught_by": [],
        "must_catch": [],
        "seconds": 1.0,
        "seed": 7,
        "run_dir": "-",
        "unit": k - 1,
    }
    summary = {"suite": "x", "seed": 7, "of": 1, "rows": [row], "fingerprint": fingerprint}
    path.write_text(json.dumps({**summary, "shard": {"k": k, "n": n}}))
    return path


def _console() -> Console:
    return Console(file=io.StringIO(), width=200)


@pytest.mark.parametrize(
    ("other", "said"),
    [({"suite": "s2"}, "different suites"), ({"code": "c2"}, "different code versions")],
)
def test_a_merge_refuses_shards_of_another_suite_or_code(
    tmp_path: Path, other: dict[str, str], said: str
) -> None:
    a = _summary(tmp_path, "a", 1, 2)
    b = _summary(tmp_path, "b", 2, 2, **other)
    with pytest.raises(ConfigError, match=said):
        merge([str(a), str(b)], store=str(tmp_path), console=_console())


def test_a_merge_refuses_a_missing_or_repeated_shard(tmp_path: Path) -> None:
    a = _summary(tmp_path, "a", 1, 3)
    b = _summary(tmp_path, "b", 3, 3)
    with pytest.raises(ConfigError, match="shard 2/3 missing"):
        merge([str(a), str(b)], store=str(tmp_path), console=_console())
    with pytest.raises(ConfigError, match="shard 1/3 given twice"):
        merge([str(a), str(a), str(b)], store=str(tmp_path), console=_console())


def test_a_merge_writes_one_table_page_and_junit_file(tmp_path: Path) -> None:
    a, b = _summary(tmp_path, "a", 1, 2), _summary(tmp_path, "b", 2, 2)
    assert merge([str(b), str(a)], store=str(tmp_path), console=_console()) == 0
    merged = next((tmp_path / "matrix").glob("*-merged.json"))
    rows = json.loads(merged.read_text())["rows"]
    assert [r["case"] for r in rows] == ["case1", "case2"]
    assert merged.with_suffix(".html").is_file()
    xml = merged.with_suffix(".xml").read_text()
    assert xml.count("<testcase") == 2


# reg-short runs 3 s, not 1: in 1 s a loaded machine issued 8 cas ops, all on
# registers no write had set yet, and the stats checker rightly calls an f that never
# succeeds invalid (p ~ 0.8^8); 3 s gives ~50 cas ops.
SUITE = """
defaults: {backend: local, nodes: 3, concurrency: 2, rate: 50}
cases:
  - {name: reg-short, run: {workload: register, time_limit: 3}, expect: valid}
  - {name: set-short, run: {workload: set, time_limit: 1}, expect: valid}
  - {name: set-kill, run: {workload: set, time_limit: 3, nemesis: [kill], nemesis_interval: 1}, expect: valid}
"""


def _table(summary: dict) -> list[tuple]:
    return [
        (r["case"], r["seed"], r["expected"], r["got"], r["passed"], tuple(r["caught_by"]))
        for r in summary["rows"]
    ]


@pytest.mark.slow
def test_two_shards_merged_give_the_table_of_the_unsharded_run(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    whole_store, shard_store = tmp_path / "whole", tmp_path / "shards"
    assert run_matrix(suite, seed=5, store=str(whole_store), console=_console()) == 0
    for k in (1, 2):
        code = run_matrix(
            suite, seed=5, store=str(shard_store), console=_console(), part=Slice(k=k, n=2)
        )
        assert code == 0, f"shard {k}/2"
    shards = sorted(str(p) for p in (shard_store / "matrix").glob("*-shard*.json"))
    assert len(shards) == 2
    assert merge(shards, store=str(shard_store), console=_console()) == 0
    whole = json.loads(next((whole_store / "matrix").glob("*.json")).read_text())
    merged = json.loads(next((shard_store / "matrix").glob("*-merged.json")).read_text())
    assert _table(merged) == _table(whole)
