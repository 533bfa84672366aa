"""``squall check`` starts fast: no typer, no Docker SDK, no leftover sweep, nothing heavy.

Each check runs a fresh interpreter and asks which modules it loaded, so a
top-level import that creeps back in (docker, rich, yaml, networkx,
pydantic through typer) fails here by name, not as a slower benchmark.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from squall.cli import _starts_clusters

HEAVY = (
    "typer",
    "click",
    "docker",
    "rich",
    "yaml",
    "networkx",
    "pydantic",
    "multiprocessing",
    "requests",
    # not heavy, but each a few ms of an 80 ms budget (issue 14): argparse
    # brings shutil and locale; a queue is for the checker's pool only
    "argparse",
    "shutil",
    "queue",
)
PROBE = """
import sys
from squall.launch import main
rc = main(sys.argv[1:])
print("MODULES " + " ".join(sorted(sys.modules)), file=sys.stderr)
"""


def _loaded_by(*argv: str) -> tuple[int, set[str], str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=60
    )
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("MODULES "))
    tops = {m.split(".")[0] for m in line.split()[1:]}
    return proc.returncode, tops, proc.stdout


@pytest.mark.parametrize("kind", ["valid", "invalid"])
def test_squall_check_imports_nothing_heavy(tmp_path: Path, kind: str) -> None:
    h = tmp_path / "h.jsonl"
    read = 1 if kind == "valid" else 2
    ops = [
        {"process": 0, "type": "invoke", "f": "write", "value": 1},
        {"process": 0, "type": "ok", "f": "write", "value": 1},
        {"process": 1, "type": "invoke", "f": "read", "value": None},
        {"process": 1, "type": "ok", "f": "read", "value": read},
    ]
    h.write_text("".join(json.dumps(o) + "\n" for o in ops))
    _, tops, out = _loaded_by("check", str(h), "--model", "register")
    assert json.loads(out)["valid"] is (kind == "valid")
    assert not tops & set(HEAVY), f"squall check imported {sorted(tops & set(HEAVY))}"


def test_only_commands_that_start_clusters_sweep_docker_leftovers() -> None:
    assert _starts_clusters(["run", "--nemesis", "kill"])
    assert _starts_clusters(["cluster", "up"])
    assert _starts_clusters(["matrix", "suites/ci.yaml"])
    assert not _starts_clusters(["check", "h.jsonl"])
    assert not _starts_clusters(["report", "store/latest"])
    assert not _starts_clusters(["--help"])


def test_the_fast_check_parser_knows_exactly_the_typer_commands_options() -> None:
    import typer.main

    from squall.cli import app
    from squall.launch import CHECK_OPTIONS

    command = typer.main.get_command(app).commands["check"]  # type: ignore[attr-defined]
    typer_opts = {o for p in command.params for o in p.opts if o.startswith("-")}
    typer_opts -= {"--help"}
    fast = set(CHECK_OPTIONS)
    assert fast == typer_opts


def test_a_check_option_the_fast_path_cannot_read_gets_typers_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from squall.launch import main

    h = tmp_path / "h.jsonl"
    h.write_text("")
    assert main(["check", str(h), "--modle", "kv"]) == 3
    assert "--modle" in capsys.readouterr().err


def test_the_fast_parser_reads_what_typer_reads_and_leaves_it_the_rest() -> None:
    from squall.launch import parse_check

    got = parse_check(["h.edn", "--model=kv", "--time-limit", "5", "--skip-damaged"])
    assert got is not None
    assert (got["history"], got["model"], got["time_limit"], got["skip_damaged"]) == (
        "h.edn",
        "kv",
        5.0,
        True,
    )
    assert parse_check(["--format", "edn", "--", "-odd-name.edn"])["history"] == "-odd-name.edn"  # type: ignore[index]
    for unsure in (
        ["h.edn", "--modle", "kv"],  # unknown: typer names it
        ["a.edn", "b.edn"],
        [],
        ["h.edn", "--time-limit", "soon"],
        ["h.edn", "--model"],
        ["h.edn", "--write=yes"],
    ):
        assert parse_check(unsure) is None, unsure
