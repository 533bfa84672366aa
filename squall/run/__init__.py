"""Running tests: ``Test`` (what to run) and ``run(test)`` (its verdict), loaded lazily."""

from __future__ import annotations

from typing import Any

__all__ = ["Test", "run"]


def __getattr__(name: str) -> Any:
    if name == "Test":
        from squall.run.config import Test

        return Test
    if name == "run":
        from squall.run.runner import run

        return run
    raise AttributeError(f"module 'squall.run' has no attribute {name!r}")
