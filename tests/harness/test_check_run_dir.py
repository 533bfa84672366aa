"""Re-checking a stored run: nothing written unless asked, a torn history checked up to its
cut, a damaged run file one line and exit 3, and a run that did not test what it asked
for never valid."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from squall.cli import main
from squall.history import write_history
from squall.run.runner import check_run_dir
from tests.checkers.synth_run import Hist

QUIET = Console(stderr=True, quiet=True)


def _run_dir(tmp_path: Path, faults: bool = True, asked: bool = True) -> Path:
    run = tmp_path / "store" / "t" / "20260101T000000"
    run.mkdir(parents=True)
    h = Hist()
    if faults:
        h.fault("kill", 1.0, 2.0, leader="n1", targets=["n1"])
    h.op(0, "write", ["k", 1], 0.1, 0.2, "ok", node="n2")
    h.op(0, "write", ["k", 2], 1.3, 1.4, "ok", node="n2")
    h.op(0, "read", ["k", None], 1.5, 1.6, "ok", ["k", 2], node="n2")
    write_history(run / "history.jsonl", h.build())
    test = {"workload": "register", "nemesis": ["kill"] if asked else [], "concurrency": 1}
    (run / "test.yaml").write_text(yaml.safe_dump(test))
    return run


def _files(run: Path) -> dict[str, str]:
    return {
        str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.rglob("*"))
        if p.is_file()
    }


def test_check_of_a_run_dir_writes_nothing_without_write(tmp_path, capsys):
    run = _run_dir(tmp_path)
    before = _files(run)
    main(["check", str(run)])
    assert _files(run) == before
    assert "valid" in json.loads(capsys.readouterr().out)


def test_check_of_a_run_dir_with_write_writes_its_results(tmp_path):
    run = _run_dir(tmp_path)
    main(["check", str(run), "--write"])
    assert (run / "results.json").is_file()


def test_a_history_cut_mid_line_is_checked_up_to_the_cut(tmp_path):
    run = _run_dir(tmp_path)
    with (run / "history.jsonl").open("a") as fh:
        fh.write('{"index": 99, "time": 5, "process": 0, "type": "inv')
    check_run_dir(run, QUIET)
    results = json.loads((run / "results.json").read_text())
    assert results["stats"]["valid"] is True, results["stats"]
    assert results["history_damage"]["stretches"][0]["tail"] is True


@pytest.mark.parametrize("text", ["{: [", "- a\n- b\n", "\x00\x01"], ids=["yaml", "list", "nul"])
def test_a_damaged_test_yaml_is_one_line_and_exit_3(tmp_path, capsys, text):
    run = _run_dir(tmp_path)
    (run / "test.yaml").write_text(text)
    assert main(["analyze", str(run)]) == 3
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and "test.yaml" in said[0], said


def test_an_interrupted_run_is_unknown_with_its_reason(tmp_path):
    run = _run_dir(tmp_path)
    code = check_run_dir(run, QUIET, interrupted=True)
    results = json.loads((run / "results.json").read_text())
    assert (code, results["valid"], "interrupted" in results["run"]["why"]) == (
        2,
        "unknown",
        True,
    )


def test_a_run_that_asked_for_faults_and_injected_none_is_unknown(tmp_path):
    run = _run_dir(tmp_path, faults=False)
    check_run_dir(run, QUIET)
    results = json.loads((run / "results.json").read_text())
    assert "injected none" in results["run"]["why"]


def test_a_run_that_injected_what_it_asked_for_has_no_run_condition(tmp_path):
    run = _run_dir(tmp_path)
    check_run_dir(run, QUIET)
    assert "run" not in json.loads((run / "results.json").read_text())


def test_a_run_without_faults_asked_needs_none(tmp_path):
    run = _run_dir(tmp_path, faults=False, asked=False)
    check_run_dir(run, QUIET)
    assert "run" not in json.loads((run / "results.json").read_text())
