"""The history formats as Jepsen and Knossos write them (issue 14), beyond the basics
of test_importers: space-separated log columns, leading comments, lists, empty
histories, and errors that show the line they are about."""

from __future__ import annotations

from pathlib import Path

import pytest

from squall.checkers.edn import parse_edn
from squall.checkers.importers import detect_format, load
from squall.checkers.linearizable import check
from squall.history import HistoryError
from squall.launch import main

KNOSSOS = """; a Knossos history
;; written as a list
(
 {:process 0, :type :invoke, :f :write, :value 1}
 {:process 0, :type :ok, :f :write, :value 1}
 {:process 1 :type :invoke :f :read :value nil}
 {:process 1 :type :ok :f :read :value 1}
)
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_log_columns_separated_by_runs_of_spaces_read_as_tabs_do(tmp_path: Path) -> None:
    tabs = _write(tmp_path, "t.log", "INFO  jepsen.util - 2\t:invoke\t:cas\t[3 0]\n")
    spaces = _write(tmp_path, "s.log", "INFO  jepsen.util - 2    :invoke  :cas   [3 0]\n")
    assert load(spaces) == load(tabs)


def test_log_value_with_spaces_inside_is_one_value(tmp_path: Path) -> None:
    p = _write(tmp_path, "s.log", "INFO  jepsen.util - 2  :invoke  :write  [1  2]  \n")
    assert load(p)[0].value == [1, 2]


def test_edn_that_begins_with_comments_is_detected_and_read(tmp_path: Path) -> None:
    assert detect_format(KNOSSOS) == "edn"
    ops = load(_write(tmp_path, "h.edn", KNOSSOS))
    assert [o.type for o in ops] == ["invoke", "ok", "invoke", "ok"]


def test_a_history_written_as_a_list_keeps_each_maps_line(tmp_path: Path) -> None:
    ops = load(_write(tmp_path, "h.edn", KNOSSOS))
    assert [o.extra["line"] for o in ops] == [4, 5, 6, 7]


def test_a_history_written_as_a_vector_reads_as_the_list_does(tmp_path: Path) -> None:
    vector = KNOSSOS.replace("(\n", "[\n").replace("\n)", "\n]")
    assert load(_write(tmp_path, "v.edn", vector)) == load(_write(tmp_path, "l.edn", KNOSSOS))


@pytest.mark.parametrize("text", ["", "\n\n", "; only a comment\n", "[]", "()"])
def test_an_empty_history_is_valid(tmp_path: Path, text: str) -> None:
    ops = load(_write(tmp_path, "e.edn", text))
    assert check("cas-register", ops)["valid"] is True


def test_squall_check_of_an_empty_file_exits_valid(tmp_path: Path) -> None:
    assert main(["check", str(_write(tmp_path, "e.jsonl", ""))]) == 0


def test_a_bad_log_line_error_shows_the_line(tmp_path: Path) -> None:
    p = _write(
        tmp_path, "e.log", "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nsomething odd here\n"
    )
    with pytest.raises(HistoryError, match=r"e\.log:2: .*'something odd here'"):
        load(p)


def test_an_edn_character_that_starts_no_token_is_named_with_its_line() -> None:
    with pytest.raises(HistoryError, match=r"h:2: cannot read EDN at '\"'"):
        parse_edn('{:a 1}\n{:b "unterminated}\n', "h")


def test_edn_reader_reads_every_kind_of_atom() -> None:
    [(v, _)] = parse_edn('[1 -2 3N 1.5 2.5M 1e3 nil true false :kw sym "s\\"q" #{1} (2)]')
    assert v == [1, -2, 3, 1.5, 2.5, 1000.0, None, True, False, "kw", "sym", 's"q', [1], [2]]
