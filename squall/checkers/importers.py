"""Reading histories written by other tools into ``squall.history.Op`` lists.

Formats (``detect_format`` picks one from the content):

* ``jsonl``: our own history.jsonl (docs/contracts.md §1);
* ``edn``: Jepsen histories, one map a line or one vector of maps:
  ``{:process 0, :type :invoke, :f :cas, :value [1 2]}``; a ``:key`` field
  (Porcupine's kv logs) makes the op keyed, ``[key, value]``;
* ``etcd-log``: the ``jepsen.util`` log lines of the etcd runs in
  Porcupine's test data: ``INFO  jepsen.util - 3\t:ok\t:cas\t[3 0]``. In
  those runs a ``:fail`` cas means its compare failed, so it is recorded as
  ``error: precondition_failed`` (an observation, see checkers.linearizable).

Every op carries its source line in ``extra["line"]`` so errors found later
(a completion without an invoke, an unknown ``f``) can name it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

from squall.history import (
    NEMESIS,
    TYPES,
    Damage,
    HistoryError,
    HistoryRead,
    Op,
    op_from_json,
    parse_jsonl,
    read_bytes,
)

FORMATS = ("jsonl", "edn", "etcd-log")
ALIASES = {
    "porcupine-kv": "edn",
    "jepsen": "edn",
    "porcupine-etcd": "etcd-log",
    "jepsen-log": "etcd-log",
}


class Keyword(str):
    """An EDN keyword (``:ok``), kept apart from strings only while parsing."""


def detect_format(text: str) -> str:
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if "jepsen.util" in line:
            return "etcd-log"
        if line.startswith('{"') or line.startswith('[{"') or _is_json(line):
            return "jsonl"
        if line.startswith("{:") or line.startswith("[") or line.startswith("{"):
            return "edn"
        break
    raise HistoryError(
        "cannot tell the history's format from its first line; give one of "
        f"{', '.join(FORMATS)} explicitly (--format)"
    )


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except (ValueError, RecursionError):
        return False
    return True


def load(path: str | os.PathLike[str], fmt: str | None = None) -> list[Op]:
    """Reads a history file in ``fmt`` (detected from the content when None)."""
    return read(path, fmt).ops


def read(
    path: str | os.PathLike[str], fmt: str | None = None, skip_damaged: bool = False
) -> HistoryRead:
    """Reads a history file in ``fmt``: its ops and, for JSON Lines, the damage read past
    (a torn tail always; damaged lines between ops with ``skip_damaged``)."""
    data = read_bytes(path)
    source = str(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
    fmt = ALIASES.get(fmt, fmt) if fmt else detect_format(text)
    damage: tuple[Damage, ...] = ()
    if fmt == "jsonl":
        got = parse_jsonl(data, source, skip_damaged, with_lines=True)
        ops, damage = got.ops, got.damage
    elif fmt == "edn":
        ops = list(_edn(text, source))
    elif fmt == "etcd-log":
        ops = list(_etcd_log(text, source))
    else:
        known = ", ".join([*FORMATS, *ALIASES])
        raise HistoryError(f"format {fmt!r} is unknown; known: {known}")
    ops = [o if o.index >= 0 else o.with_(index=i) for i, o in enumerate(ops)]
    return HistoryRead(ops=ops, damage=damage, source=source)


def _with_line(op: Op, line: int) -> Op:
    return op.with_(extra={**op.extra, "line": line})


# --- EDN ---------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s+|,|;[^\n]*
    |(?P<open>\#\{|[{\[(])|(?P<close>[}\])])
    |(?P<str>"(?:[^"\\]|\\.)*")
    |(?P<atom>[^\s,{}\[\]()"]+)""",
    re.VERBOSE,
)
_INT = re.compile(r"[-+]?\d+N?$")
_FLOAT = re.compile(r"[-+]?\d+\.\d*(?:[eE][-+]?\d+)?M?$")


def _tokens(text: str, source: str, line0: int) -> Iterator[tuple[str, str, int]]:
    pos, line = 0, line0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise HistoryError(f"{source}:{line}: cannot read EDN at {text[pos : pos + 20]!r}")
        kind = m.lastgroup
        if kind is not None:
            yield kind, m.group(kind), line
        line += m.group(0).count("\n")
        pos = m.end()


def _atom(tok: str) -> Any:
    if tok == "nil":
        return None
    if tok in ("true", "false"):
        return tok == "true"
    if _INT.match(tok):
        return int(tok.rstrip("N"))
    if _FLOAT.match(tok):
        return float(tok.rstrip("M"))
    if tok.startswith(":"):
        return Keyword(tok[1:])
    return tok


def parse_edn(text: str, source: str = "edn", line0: int = 1) -> list[tuple[Any, int]]:
    """Every top-level EDN value in ``text``, with the line it starts on."""
    stack: list[tuple[str, list[Any], int]] = []
    top: list[tuple[Any, int]] = []
    closers = {"{": "}", "[": "]", "(": ")", "#{": "}"}
    for kind, tok, line in _tokens(text, source, line0):
        if kind == "open":
            stack.append((tok, [], line))
            continue
        if kind == "close":
            if not stack or closers[stack[-1][0]] != tok:
                raise HistoryError(f"{source}:{line}: unbalanced {tok!r} in EDN")
            opener, items, start = stack.pop()
            if opener == "{":
                if len(items) % 2:
                    raise HistoryError(f"{source}:{start}: an EDN map has an odd number of forms")
                try:
                    value: Any = {items[i]: items[i + 1] for i in range(0, len(items), 2)}
                except TypeError:  # a vector or map as a key: EDN allows it, histories do not
                    raise HistoryError(
                        f"{source}:{start}: an EDN map key is a collection"
                    ) from None
            else:
                value = items
            line = start
        elif kind == "str":
            value = json.loads(tok) if "\\" in tok else tok[1:-1]
        else:
            value = _atom(tok)
        if stack:
            stack[-1][1].append(value)
        else:
            top.append((value, line))
    if stack:
        raise HistoryError(
            f"{source}:{stack[-1][2]}: EDN form opened here is never closed (truncated file?)"
        )
    return top


def _plain(v: Any) -> Any:
    if isinstance(v, Keyword):
        return str(v)
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return v


def _edn(text: str, source: str) -> Iterator[Op]:
    forms = parse_edn(text, source)
    if len(forms) == 1 and isinstance(forms[0][0], list):
        # One vector holding the whole history: lines come from each map's start.
        forms = parse_edn(text.strip()[1:].rsplit("]", 1)[0], source)
    for value, line in forms:
        if not isinstance(value, dict):
            raise HistoryError(f"{source}:{line}: expected an EDN map like {{:process 0 ...}}")
        yield _with_line(_edn_op(value, line, source), line)


def _edn_op(m: dict[Any, Any], line: int, source: str) -> Op:
    obj = {str(k): v for k, v in m.items()}
    process = obj.get("process")
    if isinstance(process, Keyword):
        obj["process"] = NEMESIS if process == "nemesis" else str(process)
    out = {k: _plain(v) for k, v in obj.items() if k != "key"}
    if "key" in obj:
        out["value"] = [_plain(obj["key"]), out.get("value")]
    return op_from_json(out, line, source)


# --- etcd jepsen.util log ----------------------------------------------------

_ETCD = re.compile(r"jepsen\.util\s+-\s+(\S+)\t:(\w+)\t:([\w-]+)(?:\t(.*))?$")


def _etcd_log(text: str, source: str) -> Iterator[Op]:
    for n, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        m = _ETCD.search(raw)
        if m is None:
            raise HistoryError(
                f"{source}:{n}: not a jepsen.util op line "
                "('INFO  jepsen.util - <process>\\t:<type>\\t:<f>\\t<value>'), "
                f"got {raw[:60]!r}"
            )
        proc_s, type_, f, rest = m.groups()
        if type_ not in TYPES:
            raise HistoryError(f"{source}:{n}: type {type_!r} is not one of {', '.join(TYPES)}")
        process: int | str = int(proc_s) if proc_s.lstrip("-").isdigit() else proc_s.lstrip(":")
        value: Any = None
        if rest and not rest.startswith(":"):  # ":timed-out" and the like are not values
            forms = parse_edn(rest, source, n)
            value = _plain(forms[0][0]) if forms else None
        error = "precondition_failed" if type_ == "fail" and f == "cas" else None
        obj = {"process": process, "type": type_, "f": f, "value": value, "error": error}
        yield _with_line(op_from_json(obj, n, source), n)
