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

from squall.checkers.edn import Keyword, parse_edn, parse_edn_items
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


def detect_format(text: str) -> str:
    """The format of a history from its first line of content; an empty history
    (no content at all) is JSON Lines, and any reader gives it no operations."""
    comments = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith(";"):  # EDN comments (Knossos and Jepsen head files with them)
            comments = True
            continue
        if "jepsen.util" in line:
            return "etcd-log"
        if line.startswith('{"') or line.startswith('[{"') or _is_json(line):
            return "jsonl"
        if line.startswith(("{", "[", "(")):
            return "edn"
        break
    else:
        return "edn" if comments else "jsonl"
    raise HistoryError(
        "cannot tell the history's format from its first line; give one of "
        f"{', '.join(FORMATS)} explicitly (--format)"
    )


def _is_json(line: str) -> bool:
    """A JSON object: what a line of JSON Lines history holds (``[]`` is EDN's empty vector)."""
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, RecursionError):
        return False


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


# --- EDN ---------------------------------------------------------------------


def _plain(v: Any) -> Any:
    """A parsed EDN value as JSON's: keywords become strings."""
    if isinstance(v, Keyword):
        return str(v)
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return v


def _edn(text: str, source: str) -> Iterator[Op]:
    # One map a line, or one vector or list holding them (lines: each map's start).
    for i, (value, line) in enumerate(parse_edn_items(text, source)):
        if not isinstance(value, dict):
            raise HistoryError(f"{source}:{line}: expected an EDN map like {{:process 0 ...}}")
        yield _edn_op(value, line, source, i)


def _edn_op(m: dict[Any, Any], line: int, source: str, index: int) -> Op:
    out = {str(k): v if type(v) in _SCALARS else _plain(v) for k, v in m.items()}
    process = out.get("process")
    if type(process) is Keyword:
        out["process"] = NEMESIS if process == "nemesis" else str(process)
    if "key" in out:
        out["value"] = [out.pop("key"), out.get("value")]
    out["line"] = line  # into extra, where every format keeps it
    out.setdefault("index", index)
    return op_from_json(out, line, source)


_SCALARS = frozenset({int, float, bool, str, type(None)})


# --- etcd jepsen.util log ----------------------------------------------------

# Columns are separated by a tab in Porcupine's files and by runs of spaces
# where a log was re-indented or copied from a terminal: either is a separator.
_ETCD = re.compile(r"jepsen\.util\s+-\s+(\S+)[ \t]+:([\w-]+)[ \t]+:([\w-]+)(?:[ \t]+(.*?))?\s*$")
_ETCD_SHAPE = "'INFO  jepsen.util - <process> :<type> :<f> <value>' (tab- or space-separated)"


def _etcd_log(text: str, source: str) -> Iterator[Op]:
    index = 0
    for n, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        m = _ETCD.search(raw)
        if m is None:
            raise HistoryError(
                f"{source}:{n}: not a jepsen.util op line ({_ETCD_SHAPE}), got {raw.strip()[:80]!r}"
            )
        proc_s, type_, f, rest = m.groups()
        if type_ not in TYPES:
            raise HistoryError(
                f"{source}:{n}: type {type_!r} is not one of {', '.join(TYPES)}, in {raw.strip()[:80]!r}"
            )
        process: int | str = int(proc_s) if proc_s.lstrip("-").isdigit() else proc_s.lstrip(":")
        value: Any = None
        if rest and not rest.startswith(":"):  # ":timed-out" and the like are not values
            forms = parse_edn(rest, source, n)
            value = _plain(forms[0][0]) if forms else None
        error = "precondition_failed" if type_ == "fail" and f == "cas" else None
        obj = {"process": process, "type": type_, "f": f, "value": value, "error": error}
        obj.update(line=n, index=index)
        index += 1
        yield op_from_json(obj, n, source)
