"""A broadcast wake-up for asyncio: every waiter re-checks its condition on ``notify``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


class Signal:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        """Waits for the next notify, at most ``timeout`` seconds."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)

    async def wait_until(self, cond: Callable[[], bool], deadline: float) -> bool:
        """Waits until ``cond()`` holds (True) or the loop time passes ``deadline`` (False)."""
        loop = asyncio.get_running_loop()
        while not cond():
            left = deadline - loop.time()
            if left <= 0:
                return False
            await self.wait(left)
        return True
