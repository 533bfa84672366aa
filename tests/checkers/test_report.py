"""report.html from a synthetic run directory, and the run index server."""

from __future__ import annotations

import html
import json
import os
import re
import shlex
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from synth_run import synthetic_run_dir

from squall.report.run_page import verdict_sentence, write_report
from squall.report.serve import list_runs, make_server


@pytest.fixture(scope="module")
def invalid_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_run_dir(tmp_path_factory.mktemp("store") / "reg" / "20260101T000000")


@pytest.fixture(scope="module")
def page(invalid_run: Path) -> str:
    return write_report(invalid_run).read_text()


def test_the_report_is_one_file_in_the_run_dir(invalid_run: Path, page: str) -> None:
    assert (invalid_run / "report.html").exists()
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")


def test_the_report_loads_nothing_from_outside(page: str) -> None:
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) == 2 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert (
        "<link" not in page
        and "<script" not in page
        and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )


def test_the_verdict_sentence_leads_with_the_linearizability_failure(page: str) -> None:
    sentence = (
        "invalid: linearizability failed on key 2: a read of 3 after a write of 4 "
        "was acknowledged (also invalid: fidelity)"
    )
    assert html.escape(sentence) in page
    assert page.index("verdict") < page.index("<h2>Faults</h2>")


def test_the_report_carries_seed_and_exact_replay_command(page: str) -> None:
    cmd = shlex.join(
        [
            "squall",
            "run",
            "--workload",
            "register",
            "--nemesis",
            "kill,partition,link",
            "--seed",
            "7",
            "--time-limit",
            "30",
        ]
    )
    assert html.escape(cmd) in page and "Seed <b>7</b>" in page


def test_the_timeline_draws_one_bar_per_fault_window(page: str) -> None:
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert svg.count("<rect") == 3
    assert all(k in svg for k in (">kill<", ">partition<", ">link<"))


def test_the_report_links_linear_html_and_has_the_failover_table(page: str) -> None:
    assert "href='linear.html'" in page
    assert "<td>partition</td><td>18.0–23.0s</td><td>n2</td><td>n2, n3</td>" in page


def test_the_report_shows_write_latency_with_and_without_faults(page: str) -> None:
    assert "<h2>Write starvation</h2>" in page
    assert "writes, no fault active" in page and "writes during or just after faults" in page


def test_the_report_links_the_run_files_beside_it(page: str) -> None:
    assert "<a href='history.jsonl'>" in page and "<a href='results.json'>" in page


def test_a_valid_run_says_all_checkers_passed(tmp_path: Path) -> None:
    page = write_report(synthetic_run_dir(tmp_path / "ok", invalid=False)).read_text()
    assert "valid: all 5 checkers passed" in page and "linear.html" not in page


def test_a_run_without_results_is_unknown_and_says_why(tmp_path: Path) -> None:
    run = synthetic_run_dir(tmp_path / "r", invalid=False)
    (run / "results.json").unlink()
    page = write_report(run).read_text()
    assert "unknown: the run has no results.json" in page


def test_an_unknown_verdict_names_the_undecided_checker() -> None:
    res = {
        "valid": "unknown",
        "stats": {"valid": True},
        "set": {"valid": "unknown", "why": "no final read succeeded"},
    }
    assert verdict_sentence(res) == "unknown: set — no final read succeeded"


def test_a_run_that_broke_leads_with_its_error() -> None:
    res = {
        "valid": "unknown",
        "run_errors": ["ModuleNotFoundError: No module named 'x'"],
        "set": {"valid": "unknown", "why": "no final read succeeded"},
    }
    assert verdict_sentence(res) == (
        "unknown: the run itself failed — ModuleNotFoundError: No module named 'x'"
    )


def test_a_missing_run_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_report(tmp_path / "nope")


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    for name, valid, mtime in (
        ("reg/old", True, 1000),
        ("reg/new", False, 3000),
        ("set/mid", "unknown", 2000),
    ):
        run = tmp_path / name
        run.mkdir(parents=True)
        (run / "results.json").write_text(json.dumps({"valid": valid}))
        (run / "report.html").write_text(f"<html>{name}</html>")
        os.utime(run / "results.json", (mtime, mtime))
    (tmp_path / "latest").symlink_to(tmp_path / "reg" / "new")
    return tmp_path


def test_runs_are_listed_newest_first_once_each(store: Path) -> None:
    runs = list_runs(store)
    assert [(r.path, r.valid) for r in runs] == [
        ("reg/new", False),
        ("set/mid", "unknown"),
        ("reg/old", True),
    ]


@pytest.fixture()
def server(store: Path) -> Iterator[str]:
    srv = make_server(store, port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def test_the_server_binds_loopback_only(store: Path) -> None:
    srv = make_server(store, port=0)
    try:
        assert srv.server_address[0] == "127.0.0.1"
    finally:
        srv.server_close()


def test_the_index_links_each_report_with_its_verdict_colour(server: str) -> None:
    index = urllib.request.urlopen(server + "/", timeout=5).read().decode()
    assert index.index("reg/new") < index.index("set/mid") < index.index("reg/old")
    assert "href='reg/new/report.html'" in index and "#cf222e" in index
    report = urllib.request.urlopen(server + "/reg/new/report.html", timeout=5).read().decode()
    assert report == "<html>reg/new</html>"


def test_the_index_lists_proof_matrix_pages_newest_first(store: Path, server: str) -> None:
    pages = store / "matrix"
    pages.mkdir()
    for stamp, passed in (("20261130T100000Z", 21), ("20261201T100000Z", 22)):
        (pages / f"{stamp}.json").write_text(json.dumps({"cases": 22, "passed": passed}))
        (pages / f"{stamp}.html").write_text("<html>matrix</html>")
    index = urllib.request.urlopen(server + "/", timeout=5).read().decode()
    newer = index.index("20261201T100000Z: 22 of 22 cases as expected")
    assert newer < index.index("20261130T100000Z: 21 of 22 cases as expected")
    assert "href='matrix/20261201T100000Z.html'" in index


def _status(url: str) -> int:
    try:
        return int(urllib.request.urlopen(url, timeout=5).status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_server_follows_no_link_out_of_the_store(
    store: Path, server: str, tmp_path: Path
) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not the store's")
    (store / "reg" / "new" / "escape").symlink_to(outside)
    assert _status(server + "/reg/new/escape/secret.txt") == 404


def test_the_server_still_follows_latest_inside_the_store(server: str) -> None:
    assert _status(server + "/latest/report.html") == 200


def test_a_nul_byte_in_a_path_is_a_404_not_a_crash(server: str) -> None:
    assert (_status(server + "/%00"), _status(server + "/")) == (404, 200)


@pytest.mark.parametrize("port", [99999, -1])
def test_a_port_that_is_no_tcp_port_is_refused_in_one_line(store: Path, port: int) -> None:
    with pytest.raises(ValueError, match="not a TCP port"):
        make_server(store, port=port)


def test_a_busy_port_is_refused_in_one_line(store: Path) -> None:
    first = make_server(store, port=0)
    try:
        with pytest.raises(ValueError, match="give another --port"):
            make_server(store, port=first.server_address[1])
    finally:
        first.server_close()


def test_the_failover_table_names_each_fault_class_and_what_was_measured(page: str) -> None:
    table = page[page.index("<h2>Failover</h2>") :]
    table = table[: table.index("</table>")]
    assert "<th>class</th><th>measured</th>" in table
    assert any(c in table for c in (">leader<", ">majority<", ">service<"))


def test_an_unjudged_kind_shows_its_reason_in_the_failover_table() -> None:
    from squall.report.run_page import failover_table

    row = {
        "fault": "pause",
        "start_s": 5.0,
        "end_s": 8.0,
        "leader": "n1",
        "targets": ["n3"],
        "class": "service",
        "class_reason": "pause of follower n3",
        "measure": "longest gap between acks while it acted",
        "write_gap_s": 0.1,
        "read_gap_s": None,
        "write_recovery_s": None,
        "read_recovery_s": None,
        "judged": True,
        "unjudged": {"read": "no read was attempted while it acted"},
        "ok": True,
    }
    results = {"failover": {"valid": True, "bound_s": 2, "faults": [row], "by_kind": {}}}
    out = failover_table(results)
    assert "not judged: no read was attempted while it acted" in out
    assert "<td>100 ms</td>" in out
