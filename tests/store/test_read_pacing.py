"""SingleFlight with a minimum gap: a read storm's callers share paced reads, never one older than their ReadIndex."""

from __future__ import annotations

import asyncio

from squall.systems.aurora.store.scheduler_api import SingleFlight


class Reads:
    """A stand-in read of the state at ``applied``, counting how often it ran."""

    def __init__(self) -> None:
        self.calls = 0
        self.applied = 0

    async def __call__(self) -> tuple[int, bytes | None]:
        self.calls += 1
        return self.applied, f"state@{self.applied}".encode()


class HeldPause:
    """The pause before a paced read, held until the test releases it (no sleeping on time)."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self.release = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        await self.release.wait()


async def _queued(sf: SingleFlight, key: str, callers: list[asyncio.Task[bytes | None]]) -> None:
    """Waits (bounded) until every caller is parked behind the paced read."""
    for _ in range(1000):
        if sf._running.get(key) is not None and all(not t.done() for t in callers):
            await asyncio.sleep(0)
            return
        await asyncio.sleep(0)
    raise AssertionError("the callers never queued behind one paced read")


def test_callers_arriving_within_the_gap_share_the_next_read() -> None:
    async def scenario() -> None:
        pause, reads = HeldPause(), Reads()
        sf = SingleFlight(min_gap=60.0, pause=pause)
        reads.applied = 1
        assert await sf.get("u", 1, reads) == b"state@1" and pause.asked == [], (
            "the first read was paced"
        )
        callers = []
        for need in (2, 3, 4):  # each needs a newer state than the cached one
            reads.applied = need
            callers.append(asyncio.ensure_future(sf.get("u", need, reads)))
        await _queued(sf, "u", callers)
        assert len(pause.asked) == 1 and 0 < pause.asked[0] <= 60.0, f"pauses asked: {pause.asked}"
        pause.release.set()
        got = await asyncio.wait_for(asyncio.gather(*callers), 5)
        assert got == [b"state@4"] * 3, "a caller got an answer older than its ReadIndex"
        assert reads.calls == 2, (
            f"{reads.calls} reads for two rounds of callers: the pause shared nothing"
        )

    asyncio.run(scenario())


def test_without_a_gap_reads_are_not_paused() -> None:
    async def scenario() -> None:
        pause, reads = HeldPause(), Reads()
        sf = SingleFlight(pause=pause)
        for need in (1, 2, 3):
            reads.applied = need
            assert await asyncio.wait_for(sf.get("u", need, reads), 5) == f"state@{need}".encode()
        assert pause.asked == [] and reads.calls == 3

    asyncio.run(scenario())
