"""A small scheduler client for the tests, on top of the store tests' leader-following client."""

from __future__ import annotations

from typing import Any

import requests

from tests.store.helpers import Client, wait_for

__all__ = ["Sched", "wait_for"]


class Sched(Client):
    def ok(self, method: str, path: str, body: Any = None) -> Any:
        r = self.call(method, path, body)
        assert r.status_code == 200, f"{method} {path} {body!r} failed: {r.status_code} {r.text}"
        return r.json()

    def create_job(self, name: str, instances: int) -> str:
        self.ok("POST", "/jobs", {"role": "t", "env": "test", "name": name, "instances": instances})
        return f"t/test/{name}"

    def tasks(self, job: str) -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = self.ok("GET", f"/tasks?job={job}")["tasks"]
        return tasks

    def start_update(self, job: str, instances: int, batch: int) -> tuple[str, list[str]]:
        uid = self.ok(
            "POST", "/updates", {"job": job, "instances": instances, "batch_size": batch}
        )["update_id"]
        ids = [t["task_id"] for t in self.tasks(job) if t["update_id"] == uid]
        return uid, ids

    def transition(self, task: str, frm: str, to: str) -> requests.Response:
        return self.call("POST", f"/tasks/{task}/status", {"from": frm, "to": to})

    def digest(self) -> str:
        d: str = self.ok("GET", "/digest")["digest"]
        return d
