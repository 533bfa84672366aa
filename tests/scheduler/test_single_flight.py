"""SingleFlight: concurrent details reads share one read, but never one older than their ReadIndex."""

from __future__ import annotations

import asyncio

from squall.systems.aurora.store.scheduler_api import SingleFlight


class Reads:
    """A stand-in read that returns the state at a growing applied index."""

    def __init__(self) -> None:
        self.calls = 0
        self.applied = 0

    async def __call__(self) -> tuple[int, bytes | None]:
        self.calls += 1
        await asyncio.sleep(
            0.01
        )  # the read takes a while: callers arriving meanwhile must share it
        return self.applied, f"state@{self.applied}".encode()


def test_concurrent_callers_share_one_read() -> None:
    async def scenario() -> list[bytes | None]:
        sf, reads = SingleFlight(), Reads()
        reads.applied = 7
        got = await asyncio.gather(*(sf.get("u", 7, reads) for _ in range(20)))
        assert reads.calls == 1
        return list(got)

    assert set(asyncio.run(scenario())) == {b"state@7"}


def test_a_caller_never_gets_an_answer_older_than_its_read_index() -> None:
    async def scenario() -> None:
        sf, reads = SingleFlight(), Reads()
        reads.applied = 3
        assert await sf.get("u", 3, reads) == b"state@3"
        reads.applied = 5
        assert await sf.get("u", 4, reads) == b"state@5", (
            "a cached answer at 3 served a read that needs 4"
        )
        assert await sf.get("u", 5, reads) == b"state@5" and reads.calls == 2

    asyncio.run(scenario())


def test_missing_answers_are_not_kept() -> None:
    async def scenario() -> None:
        sf, calls = SingleFlight(), []

        async def missing() -> tuple[int, bytes | None]:
            calls.append(1)
            return 9, None

        assert await sf.get("nope", 0, missing) is None
        assert await sf.get("nope", 0, missing) is None
        assert len(calls) == 2

    asyncio.run(scenario())
