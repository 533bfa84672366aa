"""Checking partitions in worker processes, for histories with many large keys.

Plain ``multiprocessing.Process`` workers pulling partitions from a queue,
rather than a ready-made pool, because both ready-made pools can hang here:
``multiprocessing.Pool`` silently respawns a worker that dies at start-up
(so a result never comes), and ``concurrent.futures`` cannot kill a worker
still searching a huge key once another key already decided the verdict.
Here a dead worker is noticed (its partitions come back unchecked, and the
caller checks them itself) and every worker is killed once we are done.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from squall.checkers._lin_core import Limits, search_columns
from squall.checkers._lin_search import Outcome
from squall.checkers.models import Model

Job = tuple[Hashable, tuple[Any, ...]]  # key, columns for search()
POLL_S = 0.2


def _worker(model: Model, jobs: Any, results: Any, limits: Limits) -> None:
    while True:
        job = jobs.get()
        if job is None:
            return
        key, columns = job
        results.put((key, search_columns(model, columns, limits)))


def picklable(model: Model) -> bool:
    """Whether the model can travel to a worker as a value (its step a module-level function)."""
    import pickle  # only a check that pays for a pool imports it

    try:
        pickle.dumps(model)
    except (pickle.PicklingError, AttributeError, TypeError):
        return False
    return True


def run_parallel(
    model: Model, jobs: Sequence[Job], workers: int, limits: Limits
) -> dict[Hashable, Outcome]:
    """Outcomes of the partitions the workers finished; stops at the first invalid one.

    The model goes to the workers as a value (pickled), never looked up again
    by name: a user's own model checks in parallel as the built-in ones do
    (looked up by name, every worker died with "model 'counter' is unknown").
    Keys missing from the answer were not checked (a worker died): the
    caller checks those itself.
    """
    import queue  # these two: only a check that pays for a pool imports them
    from multiprocessing import get_context

    ctx = get_context("forkserver")  # never fork a process that may run threads
    job_q = ctx.Queue()
    result_q = ctx.Queue()
    for job in sorted(jobs, key=lambda j: -len(j[1][0])):  # largest first: best balance
        job_q.put(job)
    for _ in range(workers):
        job_q.put(None)
    procs = [
        ctx.Process(target=_worker, args=(model, job_q, result_q, limits), daemon=True)
        for _ in range(workers)
    ]
    results: dict[Hashable, Outcome] = {}
    try:
        for p in procs:
            p.start()
        while len(results) < len(jobs):
            try:
                key, outcome = result_q.get(timeout=POLL_S)
            except queue.Empty:
                if not any(p.is_alive() for p in procs) and result_q.empty():
                    break  # every worker is gone: what is missing was never checked
                continue
            results[key] = outcome
            if outcome.valid is False:
                break
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        for p in procs:
            p.join(timeout=5)
        job_q.cancel_join_thread()
        result_q.cancel_join_thread()
    return results
