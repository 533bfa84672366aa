"""Reading etcd logs, Jepsen EDN and our history.jsonl, and naming bad lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from squall.checkers.importers import detect_format, load, parse_edn, read
from squall.history import HistoryError


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_detects_each_format_from_content() -> None:
    assert detect_format("INFO  jepsen.util - 0\t:invoke\t:read\tnil\n") == "etcd-log"
    assert detect_format('{"process": 0, "type": "invoke", "f": "read"}\n') == "jsonl"
    assert detect_format("{:process 0, :type :invoke, :f :read}\n") == "edn"
    assert detect_format("[{:process 0 :type :invoke :f :read}]") == "edn"


def test_etcd_log_line_becomes_an_op_with_its_line(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "e.log",
        "INFO  jepsen.util - 2\t:invoke\t:cas\t[3 0]\nINFO  jepsen.util - 2\t:fail\t:cas\t[3 0]\n",
    )
    inv, fail = load(p)
    assert (inv.process, inv.type, inv.f, inv.value, inv.extra["line"]) == (
        2,
        "invoke",
        "cas",
        [3, 0],
        1,
    )
    assert fail.error == "precondition_failed", "an etcd :fail cas is a compare that failed"


def test_etcd_info_value_is_not_read_as_a_value(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "e.log",
        "INFO  jepsen.util - 4\t:invoke\t:write\t3\nINFO  jepsen.util - 4\t:info\t:write\t:timed-out\n",
    )
    assert [o.value for o in load(p)] == [3, None]


def test_edn_map_per_line_with_key_is_keyed(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "kv.txt",
        '{:process 0, :type :invoke, :f :append, :key "0", :value "x 0 0 y"}\n'
        '{:process 0, :type :ok, :f :get, :key "7", :value ""}\n',
    )
    a, b = load(p)
    assert a.value == ["0", "x 0 0 y"] and a.f == "append"
    assert b.value == ["7", ""] and b.extra["line"] == 2


def test_edn_vector_history_and_nemesis_process(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "h.edn",
        "[{:process 0 :type :invoke :f :cas :value [1 2]}\n"
        " {:process :nemesis :type :info :f :start-partition :value nil}]\n",
    )
    a, b = load(p)
    assert a.value == [1, 2]
    assert b.process == "nemesis" and b.extra["line"] == 2


def test_edn_parser_reads_nested_values() -> None:
    [(v, line)] = parse_edn('{:a [1 -2 nil true "s\\"q"] :b {:c 1.5}}')
    assert v == {"a": [1, -2, None, True, 's"q'], "b": {"c": 1.5}} and line == 1


def test_truncated_edn_names_the_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "h.edn", "{:process 0 :type :invoke :f :read}\n{:process 0 :type :ok")
    with pytest.raises(HistoryError, match=r":2: .*never closed"):
        load(p, "edn")


def test_a_truncated_jsonl_tail_is_read_past_and_named(tmp_path: Path) -> None:
    line = json.dumps({"process": 0, "type": "invoke", "f": "read", "value": None})
    p = _write(tmp_path, "history.jsonl", line + "\n" + line[:20])
    got = read(p)
    assert (len(got.ops), got.damage[0].line, got.damage[0].tail) == (1, 2, True)


def test_jsonl_keeps_index_and_records_line(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "history.jsonl",
        json.dumps({"index": 7, "process": 1, "type": "invoke", "f": "write", "value": ["k", 1]})
        + "\n",
    )
    [op] = load(p)
    assert op.index == 7 and op.extra["line"] == 1


def test_unknown_format_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    p = _write(tmp_path, "x.txt", "hello\n")
    with pytest.raises(HistoryError, match="jsonl, edn, etcd-log"):
        load(p)


def test_garbage_line_in_etcd_log_is_named(tmp_path: Path) -> None:
    p = _write(tmp_path, "e.log", "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nnonsense\n")
    with pytest.raises(HistoryError, match=r"e.log:2: not a jepsen.util op line"):
        load(p)


def test_cli_format_names_are_accepted_as_aliases(tmp_path: Path) -> None:
    p = _write(tmp_path, "kv.txt", '{:process 0, :type :invoke, :f :get, :key "1", :value nil}\n')
    assert load(p, "porcupine-kv")[0].value == ["1", None]
