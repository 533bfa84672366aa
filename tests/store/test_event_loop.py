"""The node's event loop: uvloop when it is importable and not turned off, asyncio's otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from squall.systems.aurora.store.node import use_uvloop

uvloop = pytest.importorskip("uvloop")


@pytest.fixture
def restore_policy() -> Iterator[None]:
    before = asyncio.get_event_loop_policy()
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(before)


def test_the_node_runs_on_uvloop_when_it_is_importable(
    restore_policy: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SQUALL_UVLOOP", raising=False)
    use_uvloop()
    assert isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)


def test_squall_uvloop_0_keeps_asyncios_loop(
    restore_policy: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.set_event_loop_policy(None)  # the default policy, whatever ran before
    monkeypatch.setenv("SQUALL_UVLOOP", "0")
    use_uvloop()
    assert not isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)
