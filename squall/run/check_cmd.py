"""``squall check FILE --model M``: the linearizability verdict of a history file.

Prints the result as JSON on stdout and returns the exit code the CLI
should use: 0 linearizable, 1 not, 2 unknown (time limit), 3 bad input
(the message on stderr names the line and what to fix).
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO

from squall.checkers.importers import read
from squall.checkers.linearizable import DEFAULT_MAX_BYTES, check
from squall.checkers.models import get_model
from squall.history import HistoryError
from squall.run.verdict import conditions, note_conditions

EXIT_VALID, EXIT_INVALID, EXIT_UNKNOWN, EXIT_BAD_INPUT = 0, 1, 2, 3


def run_check(
    path: str | os.PathLike[str],
    model: str,
    fmt: str | None = None,
    html: str | os.PathLike[str] | None = None,
    time_limit: float | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    skip_damaged: bool = False,
    max_memory: int | None = None,
) -> int:
    """Checks the history at ``path`` against ``model``; returns the exit code.
    ``max_memory``: the search's cache budget per key, in MiB (default 1024)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        m = get_model(model)
        got = read(path, fmt, skip_damaged)
        history = got.ops
        if max_memory is not None and max_memory <= 0:
            raise ValueError(f"--max-memory {max_memory}: give the budget in MiB, above 0")
        budget = DEFAULT_MAX_BYTES if max_memory is None else max_memory << 20
        result = check(m, history, time_limit=time_limit, max_bytes=budget)
    except (HistoryError, ValueError) as exc:
        print(f"squall check: bad input: {exc}", file=err)
        return EXIT_BAD_INPUT
    for note in got.notes():
        print(f"squall check: {note}", file=err)
    note_conditions(result, conditions({}, got, interrupted=False), got)
    if html is not None and result["valid"] is False:
        from squall.report.linear_html import write_html  # networkx: only when drawn

        write_html(html, result, history)
        result["html"] = str(html)
    print(json.dumps(result, default=str), file=out)
    if result["valid"] is True:
        return EXIT_VALID
    return EXIT_INVALID if result["valid"] is False else EXIT_UNKNOWN
