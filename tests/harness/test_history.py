"""history.jsonl: written as the run goes, read back strictly, well formed."""

from __future__ import annotations

import json
import os

import pytest

from squall.history import (
    HistoryError,
    HistoryWriter,
    Op,
    fault_windows,
    load_history,
    pair_ops,
    read_history,
)


def _ops(*rows: tuple) -> list[Op]:
    return [
        Op(process=p, type=t, f=f, value=v, index=i, time=i * 10)
        for i, (p, t, f, v) in enumerate(rows)
    ]


def test_the_writer_stamps_index_and_time_and_flushes_each_line(tmp_path):
    path = tmp_path / "history.jsonl"
    w = HistoryWriter(path)
    w.record(Op(process=0, type="invoke", f="write", value=["k", 1]))
    # Readable before close: a SIGKILLed runner keeps every complete line.
    first = json.loads(path.read_text().splitlines()[0])
    assert first["index"] == 0 and first["time"] > 0 and first["value"] == ["k", 1]
    w.record(Op(process=0, type="ok", f="write", value=["k", 1]))
    w.close()
    ops = read_history(path)
    assert [o.index for o in ops] == [0, 1] and ops[0].time <= ops[1].time


LINE = '{"process": 0, "type": "invoke", "f": "read", "value": null}\n'


def test_a_history_cut_mid_line_is_read_up_to_the_cut_and_the_cut_is_named(tmp_path):
    path = tmp_path / "history.jsonl"
    cut = '{"process": 0, "ty'
    path.write_text(LINE * 3 + cut)
    got = load_history(path)
    assert len(got.ops) == 3
    assert [(d.line, d.offset, d.length, d.tail) for d in got.damage] == [
        (4, 3 * len(LINE), len(cut), True)
    ]


def test_a_tail_of_nul_bytes_is_read_past(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_bytes(LINE.encode() * 2 + b"\0" * 4096)
    got = load_history(path)
    assert (len(got.ops), got.damage[0].length, got.damage[0].reason) == (2, 4096, "NUL bytes")


def test_a_damaged_line_between_ops_is_refused_naming_it_and_the_flag(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text(LINE + "garbage\n" + LINE)
    with pytest.raises(HistoryError, match=r"history.jsonl:2: damaged line.*--skip-damaged"):
        load_history(path)


def test_a_damaged_line_between_ops_is_skipped_and_reported_when_asked(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text(LINE + "garbage\n" + LINE)
    got = load_history(path, skip_damaged=True)
    assert (len(got.ops), [d.line for d in got.skipped]) == (2, [2])


@pytest.mark.parametrize("bad", ["null", "[1]", "1e999", '"x"', "true"])
def test_a_time_that_is_no_integer_is_refused_naming_the_line(tmp_path, bad):
    path = tmp_path / "history.jsonl"
    path.write_text(LINE + f'{{"process": 0, "type": "ok", "f": "read", "time": {bad}}}\n')
    with pytest.raises(HistoryError, match=r"history.jsonl:2: time must be an integer"):
        read_history(path)


def test_a_fifo_is_refused_rather_than_read(tmp_path):
    fifo = tmp_path / "history.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(HistoryError, match="not a regular file"):
        read_history(fifo)


def test_an_unknown_type_is_named_with_its_line(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text('{"process": 0, "type": "done", "f": "read"}\n')
    with pytest.raises(HistoryError, match="h.jsonl:1: type 'done'"):
        read_history(path)


def test_every_invoke_is_paired_with_its_completion():
    pairs = pair_ops(
        _ops(
            (0, "invoke", "read", None),
            (1, "invoke", "write", 1),
            (1, "ok", "write", 1),
            (0, "info", "read", None),
            (2, "invoke", "read", None),
        )
    )
    assert [(p.invoke.process, p.type) for p in pairs] == [(0, "info"), (1, "ok"), (2, "info")]
    assert pairs[2].complete is None


def test_a_completion_without_an_invoke_is_rejected():
    with pytest.raises(HistoryError, match="completes no invocation"):
        pair_ops(_ops((0, "ok", "read", 1)))


def test_a_process_cannot_invoke_twice_without_completing():
    with pytest.raises(HistoryError, match="fresh process id"):
        pair_ops(_ops((0, "invoke", "read", None), (0, "invoke", "read", None)))


def test_fault_windows_open_at_start_and_close_at_stop():
    ops = [
        Op(process="nemesis", type="info", f="start-kill", value={"targets": ["n1"]}, time=100),
        Op(process=0, type="invoke", f="read", time=150),
        Op(process="nemesis", type="info", f="stop-kill", value={"targets": ["n1"]}, time=300),
        Op(process="nemesis", type="info", f="start-partition", value={}, time=400),
        Op(process=0, type="ok", f="read", time=900),
    ]
    w = fault_windows(ops)
    assert [(x["fault"], x["start"], x["end"]) for x in w] == [
        ("kill", 100, 300),
        ("partition", 400, 900),
    ]
    assert w[1].get("unhealed") is True


def test_a_fault_that_acted_before_its_completion_opens_its_window_then():
    # A kill completes once Docker saw the container exit; the signal went earlier.
    ops = [
        Op(process="nemesis", type="invoke", f="start-kill", value={}, time=1_000_000_000),
        Op(
            process="nemesis",
            type="ok",
            f="start-kill",
            time=1_900_000_000,
            value={"targets": ["n1"], "in_effect_for_s": 0.75},
        ),
        Op(process="nemesis", type="ok", f="stop-kill", value={}, time=4_000_000_000),
    ]
    assert [(x["start"], x["end"]) for x in fault_windows(ops)] == [(1_150_000_000, 4_000_000_000)]
