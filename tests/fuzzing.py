"""Mutated inputs for the readers of histories and run files, and how each outcome is judged.

Shared by the fuzz tests (a few hundred inputs, driven by Hypothesis) and
``bench/fuzz.py`` (thousands). An input must end in a *verdict* (exit 0, 1 or
2), a *clean error* (exit 3 and one line on stderr) or, for a run file, be
*accepted* (it would start a run): anything else, an exception escaping or an
``internal error`` line, is a *traceback*; an input still running after its
time limit is a *hang* (``bench/fuzz.py`` runs each in a child process it can kill).
"""

from __future__ import annotations

import contextlib
import io
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

VERDICT, CLEAN, ACCEPTED, TRACEBACK, HANG = (
    "verdict",
    "clean error",
    "accepted",
    "traceback",
    "hang",
)

# Values a damaged or hand-edited file may hold where a field should be.
WEIRD: tuple[Any, ...] = (
    None,
    True,
    -1,
    0,
    2**70,
    1e308,
    float("inf"),
    float("nan"),
    "",
    "x" * 300,
    "nemesis",
    "\x00",
    [],
    [1, [2, None]],
    {},
    {"a": {"b": 1}},
    "2m",
    "../../x",
    ".nan",
)
HISTORY_KEYS = ("index", "time", "process", "type", "f", "value", "node", "error")


def seed_history(rng: random.Random) -> list[dict[str, Any]]:
    """A well-formed register history: a few workers on two keys, one kill fault."""
    ops: list[dict[str, Any]] = []
    t = 0
    register = {"a": None, "b": None}

    def add(op: dict[str, Any]) -> None:
        nonlocal t
        t += rng.randrange(1, 5_000_000)
        ops.append({"index": len(ops), "time": t, **op})

    add({"process": "nemesis", "type": "invoke", "f": "start-kill", "value": None})
    add({"process": "nemesis", "type": "ok", "f": "start-kill", "value": {"targets": ["n1"]}})
    for _ in range(rng.randrange(3, 25)):
        p, key = rng.randrange(4), rng.choice("ab")
        if rng.random() < 0.5:
            v = rng.randrange(5)
            add({"process": p, "type": "invoke", "f": "write", "value": [key, v]})
            add({"process": p, "type": "ok", "f": "write", "value": [key, v], "node": "n2"})
            register[key] = v
        else:
            add({"process": p, "type": "invoke", "f": "read", "value": [key, None]})
            add({"process": p, "type": "ok", "f": "read", "value": [key, register[key]]})
    add({"process": "nemesis", "type": "invoke", "f": "stop-kill", "value": None})
    add({"process": "nemesis", "type": "ok", "f": "stop-kill", "value": {"targets": ["n1"]}})
    return ops


def to_jsonl(ops: list[Any]) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in ops)


def _mutate_field(lines: list[bytes], rng: random.Random) -> None:
    i = rng.randrange(len(lines))
    try:
        obj = json.loads(lines[i])
    except ValueError:
        return
    if isinstance(obj, dict):
        key = rng.choice(HISTORY_KEYS)
        if rng.random() < 0.2:
            obj.pop(key, None)
        elif key == "value" and isinstance(obj.get("value"), list) and obj["value"]:
            obj["value"][rng.randrange(len(obj["value"]))] = rng.choice(WEIRD)
        else:
            obj[key] = rng.choice(WEIRD)
    else:
        obj = rng.choice(WEIRD)
    lines[i] = json.dumps(obj).encode()


def mutate_bytes(data: bytes, rng: random.Random, field: Callable[..., None]) -> bytes:
    """One to three damages of the kinds a crash, a disk or a person leaves."""
    for _ in range(rng.randrange(1, 4)):
        lines = data.split(b"\n")
        kind = rng.randrange(9)
        if kind == 0 and data:
            data = data[: rng.randrange(len(data))]  # torn: the write was cut off
            continue
        if kind == 1 and data:
            raw = bytearray(data)
            for _ in range(rng.randrange(1, 6)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            data = bytes(raw)
            continue
        if kind == 2:
            data += b"\0" * rng.randrange(1, 4096)  # a crash's tail of zeroes
            continue
        if kind == 3:
            lines.insert(
                rng.randrange(len(lines) + 1), rng.choice([b"garbage", b"{", b"[]", b"\xff"])
            )
        elif kind == 4 and len(lines) > 1:
            del lines[rng.randrange(len(lines))]
        elif kind == 5 and lines:
            lines.insert(rng.randrange(len(lines)), lines[rng.randrange(len(lines))])
        elif kind == 6 and len(lines) > 1:
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif lines:
            field(lines, rng)
        data = b"\n".join(lines)
    return data


def mutated_history(seed: int) -> bytes:
    rng = random.Random(seed)
    return mutate_bytes(to_jsonl(seed_history(rng)), rng, _mutate_field)


# -- run files -------------------------------------------------------------------------------

TEST_KEYS = (
    "workload",
    "nemesis",
    "nodes",
    "time_limit",
    "concurrency",
    "rate",
    "seed",
    "name",
    "bugs",
    "bug_nodes",
    "failover_bound",
    "starvation_bound",
    "nemesis_interval",
    "check_time_limit",
    "system_options",
    "workload_options",
    "snapshot_every",
    "snapshot_codec",
    "election_timeout_ms",
    "heartbeat_ms",
    "digest_every",
)
EVENT_KEYS = ("at", "for", "fault", "target", "nodes", "grudge", "toxic", "attributes", "mode")


def seed_run_files(rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    """A good test file (local backend) and schedule, before mutation."""
    test = {
        "workload": rng.choice(["register", "set"]),
        "nodes": 3,
        "time_limit": 30,
        "concurrency": rng.randrange(1, 8),
        "seed": rng.randrange(100),
        "backend": "local",
    }
    events = [
        {"at": "2s", "fault": "kill", "target": "leader", "for": "2s"},
        {"at": "6s", "fault": "partition", "grudge": "halves", "for": "2s"},
        {"at": "10s", "fault": "link", "toxic": "latency", "attributes": {"latency": 20}},
    ]
    return test, {"seed": 1, "events": events[: rng.randrange(1, 4)]}


def _mutate_mapping(d: dict[str, Any], keys: tuple[str, ...], rng: random.Random) -> None:
    key = rng.choice(keys)
    if rng.random() < 0.2:
        d.pop(key, None)
    else:
        d[key] = rng.choice(WEIRD)


def mutated_run_files(seed: int) -> tuple[bytes, bytes]:
    """(test.yaml, schedule.yaml), mutated as values, as YAML text, or both."""
    rng = random.Random(seed)
    test, schedule = seed_run_files(rng)
    for _ in range(rng.randrange(1, 3)):
        if rng.random() < 0.6:
            _mutate_mapping(test, TEST_KEYS, rng)
        elif schedule["events"]:
            _mutate_mapping(rng.choice(schedule["events"]), EVENT_KEYS, rng)
    texts = [yaml.safe_dump(test).encode(), yaml.safe_dump(schedule).encode()]
    if rng.random() < 0.3:
        i = rng.randrange(2)
        texts[i] = mutate_bytes(texts[i], rng, lambda _lines, _rng: None)
    return texts[0], texts[1]


# -- judging -------------------------------------------------------------------------------


def _judged(code: int, err: str, accepted: bool = False) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if accepted:
        return ACCEPTED
    if any("internal error" in ln or "Traceback" in ln for ln in lines):
        return TRACEBACK
    if code in (0, 1, 2):
        return VERDICT
    return CLEAN if code == 3 and len(lines) == 1 else TRACEBACK


def judge_history(data: bytes, workdir: Path) -> str:
    """``squall check`` of one history file: a verdict, a clean error, or a traceback."""
    from squall.run.check_cmd import run_check

    path = workdir / "history.jsonl"
    path.write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    code = run_check(path, "cas-register", time_limit=2.0, stdout=out, stderr=err)
    said = [ln for ln in err.getvalue().splitlines() if "bad input" in ln]
    return _judged(code, "\n".join(said) if code == 3 else "")


@contextlib.contextmanager
def _no_sweep_no_run() -> Iterator[list[bool]]:
    """The CLI with its leftover sweep off and ``runner.run`` replaced by a note that
    the run would have started."""
    import squall.cli as cli
    import squall.run.runner as runner

    started: list[bool] = []
    saved = (cli._reap_leftovers, runner.run)
    cli._reap_leftovers = lambda: None  # type: ignore[assignment]
    runner.run = lambda *_a, **_k: started.append(True) or 0  # type: ignore[assignment]
    try:
        yield started
    finally:
        cli._reap_leftovers, runner.run = saved  # type: ignore[assignment]


def judge_run_files(test: bytes, schedule: bytes, workdir: Path) -> str:
    """``squall run -f test.yaml --nemesis schedule.yaml``, up to the point a run would start."""
    from squall.cli import main

    (workdir / "test.yaml").write_bytes(test)
    (workdir / "schedule.yaml").write_bytes(schedule)
    args = ["run", "-f", str(workdir / "test.yaml"), "--store", str(workdir / "store")]
    args += ["--nemesis", str(workdir / "schedule.yaml")]
    err = io.StringIO()
    with _no_sweep_no_run() as started, contextlib.redirect_stderr(err):
        code = main(args)
    return _judged(code, err.getvalue(), accepted=bool(started) and code == 0)


def judge_run_dir(test: bytes, history: bytes, workdir: Path) -> str:
    """``squall check <run dir>`` (nothing written) of a run with a mutated test.yaml and history."""
    from squall.cli import main

    run = workdir / "run"
    run.mkdir(exist_ok=True)
    (run / "test.yaml").write_bytes(test)
    (run / "history.jsonl").write_bytes(history)
    err, out = io.StringIO(), io.StringIO()
    with (
        _no_sweep_no_run(),
        contextlib.redirect_stderr(err),
        contextlib.redirect_stdout(out),
    ):
        code = main(["check", str(run)])
    said = [ln for ln in err.getvalue().splitlines() if ln.startswith("squall")]
    return _judged(code, "\n".join(said))
