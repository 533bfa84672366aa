"""A reader for the EDN that Jepsen and Knossos write histories in.

Speed is the point (a 50-client history is ~100k tokens): one ``findall``
over the whole text cuts it into tokens in C, and the Python loop over them
does as little as it can per token: no match objects, no generator, atoms
converted once per distinct spelling (``:ok``, ``:process``, small ints
repeat on every line), and line numbers kept by counting newline tokens
rather than scanning the text again.

What it reads: maps ``{}``, vectors ``[]``, lists ``()`` (a history may be
either), sets ``#{}`` (as lists), strings, keywords (as ``Keyword``, a
``str``), integers (``1N`` too), floats (``1.5M`` too), ``nil``, booleans
and symbols (as plain strings); commas are whitespace and ``;`` starts a
comment to the end of the line. Tagged literals other than sets are read
as their symbol followed by the value.
"""

from __future__ import annotations

import json
import re
from typing import Any

from squall.history import HistoryError


class Keyword(str):
    """An EDN keyword (``:ok``), kept apart from strings only while parsing."""


# One alternative per kind; exactly one group is non-empty in each match.
# The last one takes any single character no other alternative does (an
# unbalanced quote), so nothing is skipped silently.
_TOKEN = re.compile(
    r"""(\n)|[ \t\r\f\v,]+|;[^\n]*
    |(\#\{|[{\[(])|([}\])])
    |("(?:[^"\\]|\\.)*")
    |([^\s,{}\[\]()";]+)
    |(.)""",
    re.VERBOSE | re.DOTALL,
)
_INT = re.compile(r"[-+]?\d+N?$")
_FLOAT = re.compile(r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?M?$")
_CLOSERS = {"{": "}", "[": "]", "(": ")", "#{": "}"}


def atom(tok: str) -> Any:
    """The value of one atom token (a keyword, number, nil, boolean or symbol)."""
    if tok[0] == ":":
        return Keyword(tok[1:])
    if tok == "nil":
        return None
    if tok in ("true", "false"):
        return tok == "true"
    if _INT.match(tok):
        return int(tok.rstrip("N"))
    if _FLOAT.match(tok):
        return float(tok.rstrip("M"))
    return tok


def parse_edn(text: str, source: str = "edn", line0: int = 1) -> list[tuple[Any, int]]:
    """Every top-level EDN value in ``text``, with the line it starts on."""
    return _Reader(source, line0).read(text)[0]


def parse_edn_items(text: str, source: str = "edn") -> list[tuple[Any, int]]:
    """The forms of an EDN history, each with its line: the top-level values,
    or, when the text is one vector or list holding them all (Knossos writes
    histories so), its elements."""
    top, inner = _Reader(source, 1).read(text)
    if len(top) == 1 and isinstance(top[0][0], list):
        return inner
    return top


class _Reader:
    def __init__(self, source: str, line0: int) -> None:
        self.source = source
        self.line0 = line0

    def read(self, text: str) -> tuple[list[tuple[Any, int]], list[tuple[Any, int]]]:
        """(top-level forms, the elements of the first top-level collection), with lines."""
        source = self.source
        line = self.line0
        atoms: dict[str, Any] = {}
        top: list[tuple[Any, int]] = []
        inner: list[tuple[Any, int]] = []
        # Open collections: (opener, items, the line it opened on).
        stack: list[tuple[str, list[Any], int]] = []
        items: list[Any] | None = None  # the innermost open collection's items
        for nl, opener, closer, string, tok, other in _TOKEN.findall(text):
            if tok:
                value = atoms.get(tok)
                if value is None and tok not in atoms:
                    value = atoms[tok] = atom(tok)
            elif nl:
                line += 1
                continue
            elif opener:
                stack.append((opener, [], line))
                items = stack[-1][1]
                continue
            elif closer:
                if not stack or _CLOSERS[stack[-1][0]] != closer:
                    raise HistoryError(f"{source}:{line}: unbalanced {closer!r} in EDN")
                opened, done, start = stack.pop()
                value = _map(done, source, start) if opened == "{" else done
                items = stack[-1][1] if stack else None
                if len(stack) == 1 and not top:
                    inner.append((value, start))
                elif not stack:
                    top.append((value, start))
                    continue
            elif string:
                value = json.loads(string) if "\\" in string else string[1:-1]
                if len(stack) == 1 and not top:
                    inner.append((value, line))
                line += string.count("\n")
            elif other:
                raise HistoryError(f"{source}:{line}: cannot read EDN at {other!r}")
            else:
                continue  # spaces, commas, a comment
            if items is None:
                top.append((value, line))
            else:
                items.append(value)
                if tok and len(stack) == 1 and not top:
                    inner.append((value, line))
        if stack:
            raise HistoryError(
                f"{source}:{stack[-1][2]}: EDN form opened here is never closed (truncated file?)"
            )
        return top, inner


def _map(items: list[Any], source: str, line: int) -> dict[Any, Any]:
    if len(items) % 2:
        raise HistoryError(f"{source}:{line}: an EDN map has an odd number of forms")
    try:
        return dict(zip(items[::2], items[1::2], strict=True))
    except TypeError:  # a vector or map as a key: EDN allows it, histories do not
        raise HistoryError(f"{source}:{line}: an EDN map key is a collection") from None
