"""A system nobody on the team wrote, tested through the public seam only.

The adapter (``memreg.py``) lives in the test directory; the test registers
it as a user's package would, with an entry point in a ``dist-info`` on the
path, and runs ``squall run --system memreg`` as a user would. Nothing under
the ``squall`` package knows it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.slow


def installed(site: Path) -> dict[str, str]:
    """A dist-info declaring memreg's entry point, as pip would write it; the env to find it."""
    info = site / "memreg_squall-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: memreg-squall\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[squall.systems]\nmemreg = memreg:MemReg\n")
    path = os.pathsep.join([str(site), str(HERE), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


def squall(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "squall.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_users_own_system_gets_a_real_verdict_under_kills(tmp_path: Path) -> None:
    env = installed(tmp_path / "site")
    store = tmp_path / "store"
    proc = squall(
        env,
        "run",
        "--system",
        "memreg",
        "--backend",
        "local",
        "--nodes",
        "1",
        "--nemesis",
        "kill",
        "--nemesis-interval",
        "2",
        "--time-limit",
        "10",
        "--concurrency",
        "3",
        "--rate",
        "100",
        "--seed",
        "5",
        "--store",
        str(store),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(next(store.glob("*/*/results.json")).read_text())
    assert results["linearizable"]["valid"] is True
    assert results["linearizable"]["ops"] > 50, (
        "the register saw too few operations to mean anything"
    )
    kills = (
        [w for w in results["stats"].get("faults", []) if w.get("fault") == "kill"]
        if isinstance(results["stats"].get("faults"), list)
        else None
    )
    history = (next(store.glob("*/*/history.jsonl"))).read_text()
    assert '"f":"start-kill","value":{"targets":["n1"]' in history, "no kill was injected"
    assert kills is None or kills, results["stats"]
    assert "fidelity" not in results, "a check of the Aurora store ran on another system"


def test_a_fault_the_users_system_declares_it_cannot_take_is_refused_up_front(
    tmp_path: Path,
) -> None:
    env = installed(tmp_path / "site")
    proc = squall(
        env,
        "run",
        "--system",
        "memreg",
        "--backend",
        "local",
        "--nodes",
        "1",
        "--nemesis",
        "partition",
        "--time-limit",
        "5",
        "--store",
        str(tmp_path / "s"),
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert (
        "system memreg cannot take nemesis partition: one node has no peers to cut off"
        in proc.stderr
    )


def test_a_test_built_in_python_runs_a_system_object_and_records_where_it_lives(
    tmp_path: Path,
) -> None:
    import yaml
    from memreg import MemReg

    from squall.run import Test, run

    code = run(
        Test(
            system=MemReg(),
            workload="register",
            backend="local",
            nodes=1,
            time_limit=4,
            concurrency=2,
            rate=50,
            seed=3,
            store=str(tmp_path),
        )
    )
    assert code == 0
    stored = yaml.safe_load(next(tmp_path.glob("*/*/test.yaml")).read_text())
    assert stored["system"] == "memreg:MemReg", "a replay must be able to find the system again"
