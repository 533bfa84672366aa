"""Shared by the nemesis tests: a cluster with its faults set up, always torn down."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest

from squall.nemesis.base import Fault


@contextmanager
def _running(
    cluster: Any, faults: Mapping[str, Fault]
) -> Iterator[tuple[Any, Mapping[str, Fault]]]:
    """Starts the cluster and sets every fault up (seeded per fault); on the way out
    tears the faults down, the cluster down, and closes what outlives it (Toxiproxy)."""
    try:
        cluster.up()
        for i, fault in enumerate(faults.values()):
            fault.setup(cluster, random.Random(i))
        yield cluster, faults
    finally:
        try:
            for fault in faults.values():
                fault.teardown()
        finally:
            cluster.down()
            for fault in faults.values():
                closer = getattr(fault, "close", None)
                if closer is not None:
                    closer()


Running = Callable[
    [Any, Mapping[str, Fault]], AbstractContextManager[tuple[Any, Mapping[str, Fault]]]
]


@pytest.fixture(scope="session")
def running() -> Running:
    return _running
