"""The job queue: huey on SQLite in the data dir by default, on Redis for workers on many machines.

The queue carries job ids only; the job itself lives in the server's storage. The server enqueues
and workers consume, each through a `JobQueue` built from the same settings. Only a worker passes
the function that runs a job: the server's queue can send a job but never run one.
"""

from collections.abc import Callable
from pathlib import Path

from huey import Huey, RedisHuey, SqliteHuey

QUEUE_NAME = "gxft-jobs"
TASK_NAME = "gxft.run_job"
QUEUE_FILENAME = "queue.sqlite3"  # in the data dir, for the embedded (SQLite) queue


def _runs_in_workers(job_id: str) -> None:
    raise RuntimeError(f"job {job_id} reached a process that only enqueues jobs; `gxft worker` runs them")


class JobQueue:
    def __init__(self, huey: Huey, run_job: Callable[[str], None] = _runs_in_workers):
        # huey names a task after its function's module: registering this module's function on both
        # sides gives the server's and the worker's queues the same task, whoever `run_job` is.
        def run_queued_job(job_id: str) -> None:
            run_job(job_id)

        self.huey = huey
        self._task = huey.task(name=TASK_NAME)(run_queued_job)

    def enqueue(self, job_id: str) -> None:
        self._task(job_id)


def open_queue(
    sqlite_path: Path | None = None, redis_url: str | None = None, run_job: Callable[[str], None] = _runs_in_workers
) -> JobQueue:
    if redis_url:
        huey: Huey = RedisHuey(QUEUE_NAME, url=redis_url, blocking=True, results=False)
    elif sqlite_path is not None:
        huey = SqliteHuey(QUEUE_NAME, filename=str(sqlite_path), results=False)
    else:
        raise ValueError("a queue needs a SQLite path or a Redis URL")
    return JobQueue(huey, run_job)
