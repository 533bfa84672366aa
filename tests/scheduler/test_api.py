"""The scheduler's HTTP API on three real node processes."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from squall.cluster.local import LocalCluster
from squall.systems.aurora.workload import summarize, torn_reasons
from tests.aurora import node_url
from tests.scheduler.helpers import Sched

DRIVERS = 6
STEPS = (("PENDING", "ASSIGNED"), ("ASSIGNED", "STARTING"), ("STARTING", "RUNNING"))


def test_racing_threads_on_one_cas_transition_have_exactly_one_winner(
    sched: Sched, cluster: LocalCluster
) -> None:
    job = sched.create_job("race", 1)
    [task] = [t["task_id"] for t in sched.tasks(job)]
    url = node_url(cluster, sched.leader()) + f"/tasks/{task}/status"
    start = threading.Barrier(16)

    def race(_: int) -> requests.Response:
        start.wait(timeout=10)
        return requests.post(url, json={"from": "PENDING", "to": "ASSIGNED"}, timeout=10)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(race, range(16)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] + [409] * 15, [r.text for r in answers]
    losers = [r.json()["error"] for r in answers if r.status_code == 409]
    assert all(e["code"] == "precondition_failed" and e["current"] == "ASSIGNED" for e in losers)
    events = sched.ok("GET", f"/tasks/{task}")["events"]
    assert [e["status"] for e in events] == ["PENDING", "ASSIGNED"]


def test_a_stale_cas_is_409_precondition_failed_with_the_current_state(sched: Sched) -> None:
    job = sched.create_job("stale", 1)
    [task] = [t["task_id"] for t in sched.tasks(job)]
    r = sched.transition(task, "ASSIGNED", "STARTING")
    assert r.status_code == 409
    assert (
        r.json()["error"]["code"] == "precondition_failed"
        and r.json()["error"]["current"] == "PENDING"
    )


def _bad_inputs(sched: Sched) -> list[tuple[str, str, Any, int, str]]:
    job = sched.create_job("bad", 2)
    task = sched.tasks(job)[0]["task_id"]
    return [
        (
            "POST",
            "/updates",
            {"job": "t/test/nosuch", "instances": 2, "batch_size": 1},
            404,
            "does not exist",
        ),
        (
            "POST",
            "/tasks/nosuch-0-1/status",
            {"from": "PENDING", "to": "ASSIGNED"},
            404,
            "does not exist",
        ),
        ("GET", "/tasks/nosuch-0-1", None, 404, "does not exist"),
        ("GET", "/updates/nosuch", None, 404, "does not exist"),
        ("POST", "/jobs/t/test/nosuch/kill", None, 404, "does not exist"),
        ("GET", "/tasks?job=t/test/nosuch", None, 404, "does not exist"),
        (
            "POST",
            f"/tasks/{task}/status",
            {"from": "PENDING", "to": "RUNING"},
            400,
            "must be a task state",
        ),
        (
            "POST",
            f"/tasks/{task}/status",
            {"from": "pending", "to": "ASSIGNED"},
            400,
            "must be a task state",
        ),
        (
            "POST",
            f"/tasks/{task}/status",
            {"from": "PENDING", "to": "RUNNING"},
            400,
            "not a legal task transition",
        ),
        (
            "POST",
            "/jobs",
            {"role": "t", "env": "test", "name": "neg", "instances": -1},
            400,
            "instances must be",
        ),
        (
            "POST",
            "/jobs",
            {"role": "t/x", "env": "test", "name": "n", "instances": 1},
            400,
            "role must be",
        ),
        (
            "POST",
            "/updates",
            {"job": job, "instances": -4, "batch_size": 1},
            400,
            "instances must be",
        ),
        (
            "POST",
            "/updates",
            {"job": job, "instances": 4, "batch_size": 5},
            400,
            "larger than instances",
        ),
        (
            "POST",
            "/updates",
            {"job": job, "instances": 4, "batch_size": 0},
            400,
            "batch_size must be",
        ),
        ("POST", "/updates", {"job": job, "instances": 4}, 400, "missing key"),
        (
            "POST",
            "/jobs",
            {"role": "t", "env": "test", "name": "bad", "instances": 1},
            409,
            "already exists",
        ),
        ("PUT", "/quotas/t", {"cpu": -1, "ram_mb": 1, "disk_mb": 1}, 400, "cpu must be"),
    ]


def test_bad_input_gets_a_clear_4xx_json_error_and_changes_nothing(sched: Sched) -> None:
    cases = _bad_inputs(sched)
    before = sched.digest()
    for method, path, body, status, words in cases:
        r = sched.call(method, path, body)
        assert r.status_code == status, f"{method} {path} {body}: {r.status_code} {r.text}"
        assert words in r.json()["error"]["message"], f"{method} {path}: {r.json()}"
    assert sched.digest() == before, "a refused request changed the state"


def test_jobs_list_their_tasks_per_state_and_a_kill_ends_them(sched: Sched) -> None:
    job = sched.create_job("listed", 3)
    [mine] = [j for j in sched.ok("GET", "/jobs")["jobs"] if j["job"] == job]
    assert mine["tasks"] == {"PENDING": 3}
    assert sched.ok("POST", f"/jobs/{job}/kill")["ok"]
    assert {t["status"] for t in sched.tasks(job)} == {"KILLED"}


@pytest.mark.parametrize("readers", [4])
def test_update_details_are_never_torn_under_concurrent_transitions(
    sched: Sched, cluster: LocalCluster, readers: int
) -> None:
    job = sched.create_job("torn", 0)
    uid, tasks = sched.start_update(job, 180, 60)
    url = node_url(cluster, sched.leader())
    stop = threading.Event()
    seen: list[dict[str, Any]] = []

    def drive(mine: list[str]) -> None:
        s = requests.Session()
        for frm, to in STEPS:
            for t in mine:
                assert (
                    s.post(
                        f"{url}/tasks/{t}/status", json={"from": frm, "to": to}, timeout=10
                    ).status_code
                    == 200
                )

    def read() -> None:
        s = requests.Session()
        while not stop.is_set():
            r = s.get(f"{url}/updates/{uid}", timeout=10)
            assert r.status_code == 200, r.text
            seen.append(summarize(r.json()))

    with ThreadPoolExecutor(readers + DRIVERS) as pool:
        reading = [pool.submit(read) for _ in range(readers)]
        driving = [pool.submit(drive, tasks[i::DRIVERS]) for i in range(DRIVERS)]
        for f in driving:
            f.result(timeout=120)
        stop.set()
        for f in reading:
            f.result(timeout=30)
    torn = [(s, why) for s in seen if (why := torn_reasons(s))]
    assert not torn, f"{len(torn)} of {len(seen)} details answers were torn, e.g. {torn[0]}"
    assert len({s["events"] for s in seen}) > 3, "the readers never overlapped the transitions"
    final = summarize(sched.ok("GET", f"/updates/{uid}"))
    assert final["status"] == "ROLLED_FORWARD" and final["counts"] == {"RUNNING": 180}
