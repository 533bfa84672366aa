"""What faults record when they complete, on backends that answer as Docker did
in the matrix: a node that exits under the power-cut's feet, a kill that returns
only once the container is gone."""

from __future__ import annotations

import random
from typing import Any

from squall.cluster.base import ClusterError
from squall.nemesis.powercut import PowerCut


class _StopsUnderfoot:
    """Says the node runs, then the exec finds it gone, as Docker answered in the matrix."""

    nodes = ["n1"]

    def __init__(self, state: str) -> None:
        self.state = state

    def is_running(self, node: str) -> bool:
        return True

    def exec(self, node: str, argv: Any, timeout: float = 30) -> tuple[int, str]:
        raise ClusterError(
            f"could not exec {list(argv)} on {node}: 500 Server Error "
            "(Container … is not running: Exited (4) Less than a second ago)"
        )

    def read_file(self, node: str, path: str) -> bytes | None:
        # What a backend reads of a stopped node (docker: the container's archive)
        return self.state.encode() if path.endswith("/power-state") else None


def test_a_node_that_exits_between_the_check_and_the_exec_is_read_from_its_container() -> None:
    cut = PowerCut()
    cut.setup(_StopsUnderfoot('cut n1-7 {"bytes_dropped": 12}'), random.Random(1))  # type: ignore[arg-type]
    assert cut._power_state("n1") == 'cut n1-7 {"bytes_dropped": 12}'


class _Killable:
    nodes = ["n1", "n2", "n3"]

    def __init__(self) -> None:
        self.killed: list[str] = []

    def kill(self, node: str) -> None:
        self.killed.append(node)


def test_a_cut_that_cannot_be_confirmed_still_kills_and_names_every_target() -> None:
    from squall.nemesis.base import NemesisError

    live = _Killable()
    cut = PowerCut(target="all")
    cut.setup(live, random.Random(1))  # type: ignore[arg-type]

    def one_fails(node: str) -> dict[str, Any]:
        if node == "n2":
            raise NemesisError("the disk of n2 did not report a power cut within 15s")
        return {"bytes_dropped": 10}

    cut.cut = one_fails  # type: ignore[method-assign]
    value = cut.start({"target": "all"}, leader="n1")
    assert sorted(live.killed) == ["n1", "n2", "n3"]
    assert value["targets"] == ["n1", "n2", "n3"] and value["bytes_dropped"] == 20
    assert list(value["unconfirmed"]) == ["n2"] and "did not report" in value["unconfirmed"]["n2"]


class _SlowToExit(_Killable):
    """A kill that returns only when the container has exited, as Docker's does."""

    def kill(self, node: str) -> None:
        super().kill(node)
        import time

        time.sleep(0.2)


def test_a_kill_says_how_long_it_had_been_acting_when_it_completed() -> None:
    from squall.nemesis.process import Kill

    kill = Kill(target="leader")
    kill.setup(_SlowToExit(), random.Random(1))  # type: ignore[arg-type]
    value = kill.start({"target": "leader"}, leader="n1")
    assert value["targets"] == ["n1"]
    assert value["in_effect_for_s"] >= 0.2
