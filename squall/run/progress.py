"""The live line a person watches during a run: elapsed/limit, op outcomes, faults."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text


class RunProgress:
    def __init__(self, console: Console, time_limit: float, counters: Any, nemesis: Any) -> None:
        self.console = console
        self.time_limit = time_limit
        self.counters = counters
        self.nemesis = nemesis
        self.start = time.monotonic()
        self.live = Live(self._render(), console=console, refresh_per_second=4, transient=False)

    def _render(self) -> Text:
        c = self.counters
        elapsed = time.monotonic() - self.start
        faults = ", ".join(getattr(self.nemesis, "active", lambda: [])()) or "none"
        t = Text()
        t.append(f"{elapsed:5.1f}/{self.time_limit:g}s  ", style="bold")
        t.append(f"ok {c.ok}  ", style="green")
        t.append(f"fail {c.fail}  ", style="red")
        t.append(f"info {c.info}  ", style="yellow")
        t.append(f"faults: {faults}")
        return t

    def update(self) -> None:
        self.live.update(self._render())

    def __enter__(self) -> RunProgress:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.update(self._render())
        self.live.__exit__(None, None, None)
        if not self.console.is_terminal:
            self.console.print()  # a piped log gets no cursor movement: end the line ourselves
