"""The ``squall`` console script, and what every command's failure becomes.

``squall check FILE`` is answered here without loading typer (whose import
costs about as much as the whole check of a small file): the one command a
person or a script runs many times in a row on small histories starts in
tens of milliseconds. Everything else, ``--help`` and a check of a run
directory included, goes through ``squall.cli``.

Exit codes (DESIGN.md): 0 valid, 1 invalid, 2 unknown, 3 the run itself
failed or the input was bad. Bad input is one line on stderr and exit 3,
never a traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Any

EXIT_UNKNOWN, EXIT_BAD_INPUT = 2, 3


class BadInput(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``squall check FILE`` here, every other command through typer."""
    args = sys.argv[1:] if argv is None else argv
    try:
        fast = _check_fast(args)
    except (Exception, KeyboardInterrupt) as exc:
        return exit_code_of(exc)
    if fast is not None:
        return fast
    from squall.cli import main as cli_main

    return cli_main(argv)


# ``squall check FILE``'s options for the fast path, beside the typer command that
# documents them (tests/harness/test_cli_startup.py holds the two to the same
# options): the option, and the type of its value (None: a flag).
CHECK_OPTIONS: dict[str, type | None] = {
    "--model": str,
    "--format": str,
    "--html": str,
    "--time-limit": float,
    "--max-memory": int,
    "--write": None,
    "--skip-damaged": None,
}
_CHECK_DEFAULTS: dict[str, Any] = {"model": "cas-register", "format": None, "html": None}


def parse_check(args: list[str]) -> dict[str, Any] | None:
    """The fast path's reading of ``squall check``'s arguments, or None for anything
    it is not sure of (typer then reads them and explains what is wrong). Not
    argparse: with the shutil and locale it loads, that was 4 ms of a check's 80."""
    got: dict[str, Any] = {**_CHECK_DEFAULTS, "time_limit": 60.0}
    files: list[str] = []
    rest = iter(args)
    for a in rest:
        if a == "--":
            files.extend(rest)
            break
        if not a.startswith("-") or a == "-":
            files.append(a)
            continue
        name, eq, value = a.partition("=")
        if name not in CHECK_OPTIONS:
            return None
        kind = CHECK_OPTIONS[name]
        key = name[2:].replace("-", "_")
        if kind is None:
            if eq:
                return None
            got[key] = True
            continue
        if not eq:
            value = next(rest, None)  # type: ignore[assignment]
            if value is None:
                return None
        try:
            got[key] = kind(value)
        except ValueError:
            return None
    if len(files) != 1:
        return None
    got["history"] = files[0]
    return got


def _check_fast(argv: list[str]) -> int | None:
    """The exit code of ``squall check FILE ...``; None when typer must run it
    (help, a run directory, an option it has to explain)."""
    if argv[:1] != ["check"] or any(a in ("-h", "--help") for a in argv):
        return None
    ns = parse_check(argv[1:])
    if ns is None or os.path.isdir(ns["history"]):
        return None
    from squall.run.check_cmd import run_check

    return run_check(
        ns["history"],
        model=ns["model"],
        fmt=ns["format"],
        html=ns["html"],
        time_limit=ns["time_limit"],
        max_memory=ns.get("max_memory"),
        skip_damaged=ns.get("skip_damaged", False),
    )


def exit_code_of(exc: BaseException) -> int:
    """What a command that raised ``exc`` exits with, its one line said on stderr."""
    from squall.history import HistoryError

    # Imported only if loaded: a ConfigError can only have been raised once its
    # module was, and ``squall check`` never loads it (start-up time).
    config = sys.modules.get("squall.run.config")
    bad = (BadInput, HistoryError, FileNotFoundError, ValueError)
    if isinstance(exc, bad) or (config is not None and isinstance(exc, config.ConfigError)):
        say(f"squall: {exc}")
        return EXIT_BAD_INPUT
    if isinstance(exc, OSError):  # a read-only run directory, a busy port, a full disk
        where = f" {exc.filename}" if exc.filename else ""
        say(f"squall: {exc.strerror or type(exc).__name__}:{where}")
        return EXIT_BAD_INPUT
    if isinstance(exc, KeyboardInterrupt):
        say("squall: interrupted")
        return EXIT_UNKNOWN
    # Click's exceptions (typer vendors its own copy in newer releases, so
    # match by shape, not by class): usage errors carry format_message,
    # Exit carries exit_code, Abort is Ctrl-C at a prompt.
    if hasattr(exc, "format_message"):
        say(f"squall: {exc.format_message()} (see squall --help)")
        return EXIT_BAD_INPUT
    if type(exc).__name__ == "Abort":
        say("squall: aborted")
        return EXIT_BAD_INPUT
    if isinstance(getattr(exc, "exit_code", None), int):
        return int(exc.exit_code)  # type: ignore[attr-defined]
    return internal_error(exc)


def internal_error(exc: BaseException) -> int:
    """A bug of Squall's own: one line naming it and the file holding the whole traceback,
    and exit 3 (the run failed); never a traceback that exits 1, which means *invalid*."""
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(exc))
    try:
        fd, path = tempfile.mkstemp(prefix="squall-traceback-", suffix=".txt")
        with open(fd, "w") as fh:
            fh.write(text)
    except OSError:
        path = "(could not be written)"
    say(f"squall: internal error {type(exc).__name__}: {str(exc)[:200]} (traceback: {path})")
    return EXIT_BAD_INPUT


def say(line: str) -> None:
    """One error line, never wrapped: in a CI log (no terminal) rich would fold it at 80 columns."""
    # A message quoting a parser (YAML's name the position on a line of their own) is
    # still one line: CI greps for it and a person reads it at a glance.
    print(" ".join(line.split()), file=sys.stderr, flush=True)
