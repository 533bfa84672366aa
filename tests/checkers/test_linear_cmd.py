"""`squall check`: verdict as JSON on stdout, exit 0/1/2, bad input exit 3 naming the line."""

from __future__ import annotations

import io
import json
from pathlib import Path

from squall.run.check_cmd import run_check


def _run(path: Path, model: str = "cas-register", **kw: object) -> tuple[int, dict | None, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = run_check(path, model, stdout=out, stderr=err, **kw)  # type: ignore[arg-type]
    return rc, json.loads(out.getvalue()) if out.getvalue() else None, err.getvalue()


def _jsonl(tmp_path: Path, ops: list[dict]) -> Path:
    p = tmp_path / "history.jsonl"
    p.write_text("".join(json.dumps(o) + "\n" for o in ops))
    return p


W = {"process": 0, "type": "invoke", "f": "write", "value": ["k", 1]}
W_OK = {**W, "type": "ok"}
R = {"process": 1, "type": "invoke", "f": "read", "value": ["k", None]}


def test_valid_history_exits_zero(tmp_path: Path) -> None:
    rc, res, _ = _run(_jsonl(tmp_path, [W, W_OK, R, {**R, "type": "ok", "value": ["k", 1]}]))
    assert rc == 0 and res is not None and res["valid"] is True


def test_invalid_history_exits_one_and_writes_the_page(tmp_path: Path) -> None:
    html = tmp_path / "out.html"
    rc, res, _ = _run(
        _jsonl(tmp_path, [W, W_OK, R, {**R, "type": "ok", "value": ["k", 3]}]), html=html
    )
    assert rc == 1 and res is not None and res["valid"] is False
    assert html.exists() and res["html"] == str(html)


def _hard(n: int) -> list[dict]:
    """test_linearizable._hard_history's shape: exponential in the n writes."""
    ops = [{"process": p, "type": "invoke", "f": "write", "value": ["k", p]} for p in range(n)]
    read_0 = [{**R, "process": 100}, {**R, "process": 100, "type": "ok", "value": ["k", 0]}]
    w = {"process": 101, "type": "invoke", "f": "write", "value": ["k", 100]}
    ops += [*read_0, w, {**w, "type": "ok"}, *read_0]
    ops += [{"process": p, "type": "info", "f": "write", "value": ["k", p]} for p in range(n)]
    return ops


def test_time_limit_exits_two(tmp_path: Path) -> None:
    rc, res, _ = _run(_jsonl(tmp_path, _hard(22)), time_limit=0.05)
    assert rc == 2 and res is not None and res["valid"] == "unknown"


def test_max_memory_bounds_the_search_and_says_how_to_raise_it(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, _hard(18))
    rc, res, _ = _run(path, time_limit=60, max_memory=1)
    assert rc == 2 and res is not None and res["valid"] == "unknown"
    assert "memory" in res["unknown_reason"], res["unknown_reason"]
    assert "--max-memory" in res["why"]
    rc, res, _ = _run(path, time_limit=60, max_memory=256)
    assert rc == 1 and res is not None and res["valid"] is False
    rc, _, err = _run(path, max_memory=0)
    assert rc == 3 and "--max-memory 0" in err


def test_a_history_cut_mid_line_is_checked_up_to_the_cut_naming_it(tmp_path: Path) -> None:
    p = tmp_path / "history.jsonl"
    p.write_text("".join(json.dumps(o) + "\n" for o in (W, W_OK)) + json.dumps(R)[:15])
    rc, res, err = _run(p)
    assert (rc, res is not None and res["valid"]) == (0, True), err
    assert "from line 3" in err
    assert res["history_damage"]["stretches"][0]["length"] == 15


def test_a_damaged_line_between_ops_exits_three_naming_it(tmp_path: Path) -> None:
    p = tmp_path / "history.jsonl"
    p.write_text(json.dumps(W) + "\nxx\n" + json.dumps(W_OK) + "\n")
    rc, res, err = _run(p)
    assert (rc, res) == (3, None)
    assert "history.jsonl:2: damaged line" in err


def test_damaged_lines_skipped_on_request_make_the_verdict_unknown(tmp_path: Path) -> None:
    p = tmp_path / "history.jsonl"
    p.write_text(json.dumps(W) + "\nxx\n" + json.dumps(W_OK) + "\n")
    rc, res, _ = _run(p, skip_damaged=True)
    assert (rc, res is not None and res["valid"]) == (2, "unknown")


def test_unknown_f_exits_three_naming_the_line(tmp_path: Path) -> None:
    rc, _, err = _run(_jsonl(tmp_path, [W, W_OK, {**R, "f": "incr"}]))
    assert rc == 3 and "line 3" in err and "'incr' is unknown" in err


def test_completion_without_invoke_exits_three_naming_the_line(tmp_path: Path) -> None:
    rc, _, err = _run(_jsonl(tmp_path, [W, W_OK, {**R, "type": "ok"}]))
    assert rc == 3 and "line 3" in err and "without an invoke" in err


def test_unknown_model_exits_three(tmp_path: Path) -> None:
    rc, _, err = _run(_jsonl(tmp_path, [W, W_OK]), model="queue")
    assert rc == 3 and "known: " in err


def test_format_can_be_given_explicitly(tmp_path: Path) -> None:
    p = tmp_path / "h.log"
    p.write_text(
        "INFO  jepsen.util - 0\t:invoke\t:write\t1\nINFO  jepsen.util - 0\t:ok\t:write\t1\n"
    )
    rc, res, _ = _run(p, fmt="etcd-log")
    assert rc == 0 and res is not None and res["ops"] == 1
