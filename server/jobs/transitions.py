"""Every change of a job's status, each one a guarded update: the row changes only while the job is in a
status the change starts from (and, for what a worker reports, while that worker still holds the
job), and the row count says whether it did. Of two racing changes, say a cancel and a completion,
or two workers claiming one job, exactly one happens.

    create ──▶ queued ──claim──▶ running ─────complete─────▶ succeeded
               │ ▲ ▲               │ ▲ │ │                       ▲
               │ │ └────requeue────┘ │ │ └───fail────▶ failed    │
               │ │                 pause resume_held   ▲ ▲       │
               │ │                   ▼ │               │ │       │
               │ └──────resume───── paused ────fail────┘ │       │
               │                     ▲ └────complete─────┼───────┘
               ├───────pause─────────┘                   │
               └───────fail (a claim that cannot train)──┘

    and from validating_files, queued, running or paused: cancel ──▶ cancelled

| change   | from                                      | to        | by                            |
|----------|-------------------------------------------|-----------|-------------------------------|
| claim    | queued                                    | running   | a worker                      |
| complete | running, paused                           | succeeded | the worker holding the job    |
| fail     | queued, running, paused                   | failed    | that worker, or a failed claim |
| requeue  | running                                   | queued    | the lease watch               |
| pause    | queued, running                           | paused    | the user                      |
| resume   | paused                                    | queued    | the user                      |
| resume_held | paused                                 | running   | the user, while the worker saves |
| cancel   | validating_files, queued, running, paused | cancelled | the user                      |

A worker holds a lease on its running job, renewed by every report; a job whose worker goes silent
is queued again and the next worker resumes it from its last checkpoint. The user's orders for a
running job travel to its worker in the answer to its next report: a paused job keeps its worker
until the worker has saved a pause checkpoint (which is why a paused job may still complete, when
the pause came during its last step, or fail while saving). A resume while it saves (`resume_held`)
makes the job running again on the same worker, which hears "continue" in the answer to its pause
checkpoint and trains on from it, without a step lost or repeated. A cancelled job has no worker from the
moment it is cancelled: whatever its old worker reports is refused (409), which tells it to stop.
A job in a final status never changes again.
"""

import logging
import re
import time
from typing import Any

from contract.internal_api import (
    MAX_STEPS,
    CheckpointReport,
    CompletionReport,
    FailureReport,
    JobSpec,
    Order,
    ProgressReport,
)
from contract.job_queue import JobQueue
from contract.literals import JobStatus
from server.base_models import BaseModelRegistry
from server.config import Settings
from server.errors import invalid_request, job_not_held
from server.files.store import FileStore
from server.jobs.job_spec import CannotTrain, job_spec
from server.jobs.results import JobResults
from server.webhooks.outbox import WebhookOutbox
from storage.jobs import JobRecord, JobRepository

log = logging.getLogger("gxft.jobs")

# change → (the statuses it starts from, the status it leads to), as in the table above.
TRANSITIONS: dict[str, tuple[tuple[JobStatus, ...], JobStatus]] = {
    "claim": (("queued",), "running"),
    "complete": (("running", "paused"), "succeeded"),
    "fail": (("queued", "running", "paused"), "failed"),
    "requeue": (("running",), "queued"),
    "pause": (("queued", "running"), "paused"),
    "resume": (("paused",), "queued"),
    "resume_held": (("paused",), "running"),
    "cancel": (("validating_files", "queued", "running", "paused"), "cancelled"),
}
# The order a worker hears in the answer to its report, by the job's status; any other status: "stop".
ORDERS: dict[JobStatus, Order] = {"running": "continue", "paused": "pause"}
# A worker's failure message may quote what it was calling; users see the message, not the address.
INTERNAL_URL = re.compile(r"https?://\S*?/internal/\S*|'?/internal/[^\s']*'?")
# How far an event's time may stray from the server's clock.
CLOCK_SKEW_SECONDS = 600
# What a worker may still report on: a paused job's worker is saving its pause checkpoint.
HELD_STATUSES: tuple[JobStatus, ...] = ("running", "paused")


class JobTransitions:
    def __init__(self, settings: Settings, jobs: JobRepository, files: FileStore, registry: BaseModelRegistry,
                 queue: JobQueue, results: JobResults, webhooks: WebhookOutbox):
        self.settings = settings
        self.jobs = jobs
        self.files = files
        self.registry = registry
        self.queue = queue
        self.results = results
        self.webhooks = webhooks

    def _change(self, job_id: str, change: str, *, held_by: str | None = None, if_unheld: bool = False,
                **columns: Any) -> bool:
        sources, target = TRANSITIONS[change]
        return self.jobs.update(job_id, if_status=sources, held_by=held_by, if_unheld=if_unheld, status=target,
                                **columns)

    def _current(self, job_id: str) -> JobRecord:
        job = self.jobs.get(job_id)
        assert job is not None, "jobs are never removed"
        return job

    # The user's orders

    def cancel(self, job: JobRecord) -> JobRecord:
        with self.jobs.db.transaction():
            # The worker lets go at once: whatever it reports from now on is refused, so the job stays cancelled.
            if not self._change(job.id, "cancel", estimated_finish=None, worker_id=None, lease_expires_at=None):
                status = self._current(job.id).status
                raise invalid_request(f"Job {job.id} has already {status}; it cannot be cancelled.", param="id")
            self.jobs.add_event(job.id, "The job was cancelled", data={})
            self.webhooks.job_ended(job.project, job.id, "fine_tuning.job.cancelled")
        self.results.drop_leftovers(job.id)
        return self._current(job.id)

    def pause(self, job: JobRecord) -> JobRecord:
        with self.jobs.db.transaction():
            running = self._current(job.id).status == "running"
            if not self._change(job.id, "pause", estimated_finish=None):
                status = self._current(job.id).status
                raise invalid_request(f"Job {job.id} is {status}; only a queued or running job can be paused.",
                                      param="id")
            self.jobs.add_event(job.id, "Pausing the job" if running else "The job was paused", data={})
        return self._current(job.id)

    def resume(self, job: JobRecord) -> JobRecord:
        with self.jobs.db.transaction():
            current = self._current(job.id)
            if current.status == "paused" and current.worker_id is not None:
                # Its worker is still saving the pause checkpoint, with the model in memory: it trains on.
                if self._change(job.id, "resume_held", held_by=current.worker_id):
                    self.jobs.add_event(job.id, "The job was resumed", data={})
                    return self._current(job.id)
            if not self._change(job.id, "resume", if_unheld=True):
                raise invalid_request(f"Job {job.id} is {current.status}; only a paused job can be resumed.",
                                      param="id")
            self.jobs.add_event(job.id, "The job was resumed and is queued", data={})
        self.queue.enqueue(job.id)
        return self._current(job.id)

    # What workers report

    def claim(self, job_id: str, worker_id: str) -> JobSpec | None:
        """The job for `worker_id`, or None when it is not queued (another worker has it, or it ended)."""
        job = self.jobs.get(job_id)
        if job is None or job.status != "queued":
            return None
        try:
            spec = job_spec(job, self.registry, self.files, self.results)
        except CannotTrain as refusal:
            self._fail(job.id, refusal.code, refusal.message, refusal.param)
            return None
        with self.jobs.db.transaction():
            claimed = self._change(
                job.id, "claim", worker_id=worker_id, lease_expires_at=time.time() + self.settings.lease_seconds,
                resolved=spec.settings,
            )
            if not claimed:
                return None
            if spec.resume is None:
                self.jobs.add_event(job.id, "Fine-tuning job started", data={})
            else:
                self.jobs.add_event(job.id, f"Fine-tuning job resumed from step {spec.resume.step_number}", data={})
        return spec

    def held_job(self, job_id: str, worker_id: str) -> JobRecord:
        """The job, while `worker_id` holds it and it is running or saving its pause checkpoint."""
        job = self.jobs.get(job_id)
        if job is None or job.worker_id != worker_id or job.status not in HELD_STATUSES:
            raise job_not_held(job_id)
        return job

    def report(self, job_id: str, worker_id: str, report: ProgressReport) -> Order:
        """Progress from the worker that holds the job (which renews its lease); answers the user's latest
        order. A report on a job the worker no longer holds (cancelled, ended, taken back) changes nothing."""
        with self.jobs.db.transaction():
            job = self.held_job(job_id, worker_id)
            _check_progress(job, report)
            if not self.jobs.update(
                job.id, if_status=HELD_STATUSES, held_by=worker_id,
                trained_steps=report.trained_steps, total_steps=report.total_steps,
                trained_tokens=report.trained_tokens,
                estimated_finish=report.estimated_finish if job.status == "running" else None,
                lease_expires_at=time.time() + self.settings.lease_seconds,
            ):
                raise job_not_held(job.id)
            for event in report.events:
                self.jobs.add_event(job.id, event.message, level=event.level, type=event.type, data=event.data,
                                    created_at=event.created_at)
        return ORDERS[job.status]

    def renew_lease(self, job_id: str, worker_id: str) -> Order:
        """The lease alone renewed, progress left as it is: a worker whose training processes are starting,
        or whose rank 0 reports the progress itself (worker/rank_processes.py)."""
        with self.jobs.db.transaction():
            job = self.held_job(job_id, worker_id)
            if not self.jobs.update(job.id, if_status=HELD_STATUSES, held_by=worker_id,
                                    lease_expires_at=time.time() + self.settings.lease_seconds):
                raise job_not_held(job.id)
        return ORDERS[job.status]

    def add_checkpoint(self, job_id: str, worker_id: str, report: CheckpointReport) -> Order:
        """Records the checkpoint; answers the order for the worker, as a report's answer does. For a pause
        checkpoint that is "pause" (the worker has let go of the job) unless the user resumed meanwhile."""
        with self.jobs.db.transaction():
            job = self.held_job(job_id, worker_id)
            if job.total_steps is not None and report.step_number > job.total_steps:
                raise invalid_request(f"Step {report.step_number} is past the job's {job.total_steps} steps.",
                                      param="step_number")
            self.results.record_checkpoint(job, report)
            if report.paused and self.jobs.update(job.id, if_status=("paused",), held_by=worker_id, worker_id=None,
                                                  lease_expires_at=None):
                self.jobs.add_event(job.id, f"The job was paused at step {report.step_number}", data={})
                order: Order = "pause"
            else:
                order = ORDERS[job.status]
        self.results.prune(job.id)
        return order

    def complete(self, job_id: str, worker_id: str, report: CompletionReport) -> JobRecord:
        with self.jobs.db.transaction():
            job = self.held_job(job_id, worker_id)
            name = self.results.fine_tuned_model_name(job, job.model_name_id)
            if not self._change(
                job.id, "complete", held_by=worker_id, finished_at=int(time.time()), fine_tuned_model=name,
                trained_tokens=report.trained_tokens, estimated_finish=None, worker_id=None, lease_expires_at=None,
            ):
                raise job_not_held(job.id)
            self.jobs.update(job.id, result_files=self.results.adopt(job, report.result_files))
            self.jobs.add_event(job.id, f"New fine-tuned model created: {name}", data={})
            self.jobs.add_event(job.id, "The job has successfully completed", data={})
            self.webhooks.job_ended(job.project, job.id, "fine_tuning.job.succeeded")
        self.results.drop_leftovers(job.id)
        return self._current(job.id)

    def fail(self, job_id: str, worker_id: str, report: FailureReport) -> JobRecord:
        self.held_job(job_id, worker_id)
        message = INTERNAL_URL.sub("the server's internal API", report.message)  # never shown to the user
        if not self._fail(job_id, report.code, message, report.param, held_by=worker_id):
            raise job_not_held(job_id)
        return self._current(job_id)

    def _fail(self, job_id: str, code: str, message: str, param: str | None, held_by: str | None = None) -> bool:
        with self.jobs.db.transaction():
            failed = self._change(
                job_id, "fail", held_by=held_by, error={"code": code, "message": message, "param": param},
                estimated_finish=None, worker_id=None, lease_expires_at=None,
            )
            if failed:
                self.jobs.add_event(job_id, f"The job failed: {message}", level="error", data={"code": code})
                self.webhooks.job_ended(self._current(job_id).project, job_id, "fine_tuning.job.failed")
        if failed:
            self.results.drop_leftovers(job_id)
        return failed

    # Housekeeping

    def requeue_expired(self) -> None:
        now = time.time()
        for job in self.jobs.expired_leases(now):
            resume = self.results.resume_point(job.id)
            where = f"step {resume.step_number}" if resume else "the start"
            with self.jobs.db.transaction():
                if not self._change(job.id, "requeue", held_by=job.worker_id, worker_id=None, lease_expires_at=None,
                                    estimated_finish=None):
                    continue
                self.jobs.add_event(
                    job.id,
                    f"The worker running this job stopped reporting; the job is queued again and resumes from {where}",
                    level="warn",
                    data={},
                )
            log.warning("job %s lost its worker; queued again", job.id)
            self.queue.enqueue(job.id)
        # A worker that died while saving a pause checkpoint leaves the job paused at its last checkpoint.
        for job_id in self.jobs.paused_with_expired_lease(now):
            self.jobs.update(job_id, if_status=("paused",), worker_id=None, lease_expires_at=None)

    def enqueue_waiting(self) -> None:
        """At start-up: queue entries may have been lost with a crash; claiming twice is harmless."""
        for job in self.jobs.queued():
            self.queue.enqueue(job.id)


def _check_progress(job: JobRecord, report: ProgressReport) -> None:
    """What a worker reports must be possible for this job: its own steps, its own time."""
    if report.total_steps is not None and report.trained_steps > report.total_steps:
        raise invalid_request(f"{report.trained_steps} trained steps are more than the {report.total_steps} the job "
                              "has.", param="trained_steps")
    now = time.time()
    for event in report.events:
        if not job.created_at - CLOCK_SKEW_SECONDS <= event.created_at <= now + CLOCK_SKEW_SECONDS:
            raise invalid_request(f"An event's created_at ({event.created_at}) is not a time of this job.",
                                  param="events.created_at")
        step = (event.data or {}).get("step")
        if event.type == "metrics" and not (isinstance(step, int) and 1 <= step <= (report.total_steps or MAX_STEPS)):
            raise invalid_request("A metrics event needs its step, from 1 to the job's total.", param="events.data")
