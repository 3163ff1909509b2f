"""The job queue: huey on SQLite in the data dir by default, on Redis for workers on many machines.

The queue carries job ids only; the job itself lives in the server's storage. The server
enqueues, workers consume; both build the same queue from the same settings.
"""

from pathlib import Path
from typing import Callable

from huey import Huey, RedisHuey, SqliteHuey

QUEUE_NAME = "gxft-jobs"


class JobQueue:
    def __init__(self, huey: Huey, run_job: Callable[[str], None]):
        self.huey = huey
        self._task = huey.task(name="gxft.run_job")(run_job)

    def enqueue(self, job_id: str) -> None:
        self._task(job_id)


def make_huey(sqlite_path: Path | None = None, redis_url: str | None = None) -> Huey:
    if redis_url:
        return RedisHuey(QUEUE_NAME, url=redis_url, blocking=True, results=False)
    if sqlite_path is None:
        raise ValueError("a queue needs a SQLite path or a Redis URL")
    return SqliteHuey(QUEUE_NAME, filename=str(sqlite_path), results=False)


def _run_in_worker(job_id: str) -> None:
    # Imported here so that the server, which only enqueues, never imports the training stack.
    from worker.runner import run_claimed_job

    run_claimed_job(job_id)


def job_queue(sqlite_path: Path | None = None, redis_url: str | None = None) -> JobQueue:
    return JobQueue(make_huey(sqlite_path, redis_url), _run_in_worker)
