"""getJobUpdateDetails at the SQLite level: one read transaction on a reader connection, never torn."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from squall.systems.aurora.store import scheduler_api
from squall.systems.aurora.workload import summarize, torn_reasons
from tests.scheduler.conftest import Applier

STEPS = (("PENDING", "ASSIGNED"), ("ASSIGNED", "STARTING"), ("STARTING", "RUNNING"))


def test_details_read_while_the_writer_applies_are_never_torn(apply: Applier) -> None:
    apply("sched.CreateJob", job={"role": "r", "env": "e", "name": "n", "instances": 0})
    apply("sched.StartJobUpdate", job="r/e/n", update_id="u", instances=1000, batch_size=250)
    tasks = [r[0] for r in apply.rows("SELECT task_id FROM sched_tasks ORDER BY instance")]
    read = scheduler_api._tx(
        scheduler_api._encoded(lambda c: scheduler_api.read_update_details(c, "u"))
    )
    stop = threading.Event()
    seen: list[dict[str, Any]] = []

    def reader() -> None:
        while not stop.is_set():
            _index, body = apply.sm.read(read)
            assert body is not None
            seen.append(summarize(json.loads(body)))

    with ThreadPoolExecutor(3) as pool:
        readers = [pool.submit(reader) for _ in range(3)]
        try:
            for frm, to in STEPS:  # the writer: one entry per transition, as the log applies them
                for t in tasks:
                    apply("sched.ChangeState", task_id=t, **{"from": frm, "to": to})
        finally:
            stop.set()
        for f in readers:
            f.result(timeout=60)
    torn = [(s, why) for s in seen if (why := torn_reasons(s))]
    assert not torn, f"{len(torn)} of {len(seen)} details reads were torn, e.g. {torn[0]}"
    assert len({s["index"] for s in seen}) > 10, "the reads never overlapped the writer"
    assert summarize(json.loads(apply.sm.read(read)[1] or b"{}"))["status"] == "ROLLED_FORWARD"
