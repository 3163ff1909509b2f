"""Job status changes on real storage (a SQLite file, a blob folder, the SQLite queue): each one happens
only from the statuses its table row names, so that of two racing changes exactly one takes effect."""

import re

import pytest

from contract.internal_api import CheckpointReport, CompletionReport, FailureReport, ProgressReport
from contract.job_queue import open_queue
from server.base_models import BaseModelRegistry
from server.config import Settings
from server.errors import APIError
from server.files.store import FileStore
from server.jobs import transitions as transitions_module
from server.jobs.results import JobResults
from server.jobs.transitions import TRANSITIONS, JobTransitions
from server.webhooks.outbox import WebhookOutbox
from storage.blobs import BlobStore
from storage.database import Database
from storage.files import FileRecord, FileRepository
from storage.jobs import JobRecord, JobRepository
from storage.webhooks import WebhookRepository


def test_the_docstring_table_is_the_transitions_table():
    rows = re.findall(r"^\| (\w+) +\| ([\w, ]+?) +\| (\w+) +\|", transitions_module.__doc__ or "", re.MULTILINE)
    table = {change: (tuple(sources.split(", ")), target) for change, sources, target in rows if change != "change"}
    assert table == TRANSITIONS


@pytest.fixture
def transitions(tmp_path):
    settings = Settings(data_dir=tmp_path)
    db = Database(tmp_path / "gxft.sqlite3")
    blobs = BlobStore(tmp_path / "blobs")
    jobs = JobRepository(db)
    files = FileStore(FileRepository(db), blobs)
    files.records.insert(FileRecord(
        id="file-train", project="p", filename="train.jsonl", purpose="fine-tune", bytes=1, created_at=0,
        status="processed", data_format="chat", example_count=20,
    ))
    registry = BaseModelRegistry.load()
    queue = open_queue(tmp_path / "queue.sqlite3")
    yield JobTransitions(settings, jobs, files, registry, queue, JobResults(jobs, files, blobs),
                         WebhookOutbox(WebhookRepository(db)))
    db.close()


def _queued_job(transitions: JobTransitions) -> JobRecord:
    job = JobRecord(
        id="ftjob-1", project="p", model="gxft/tiny-chat", base_model="gxft/tiny-chat", training_file="file-train",
        validation_file=None, status="queued", created_at=0, seed=1, suffix=None, model_name_id="abc",
        method_type="supervised", hyperparameters={"n_epochs": "auto", "batch_size": "auto",
                                                   "learning_rate_multiplier": "auto"},
        metadata=None, integrations=[],
    )
    transitions.jobs.insert(job)
    return job


def test_only_one_worker_claims_a_job(transitions):
    job = _queued_job(transitions)
    assert transitions.claim(job.id, "w1") is not None
    assert transitions.claim(job.id, "w2") is None
    assert transitions.jobs.get(job.id).worker_id == "w1"


def test_a_completion_after_a_cancel_changes_nothing(transitions):
    job = _queued_job(transitions)
    transitions.claim(job.id, "w1")
    transitions.cancel(transitions.jobs.get(job.id))
    with pytest.raises(APIError) as refused:
        transitions.complete(job.id, "w1", CompletionReport(trained_tokens=5, result_files={}))
    assert refused.value.status == 409
    with pytest.raises(APIError):
        transitions.fail(job.id, "w1", FailureReport(code="x", message="late"))
    after = transitions.jobs.get(job.id)
    assert (after.status, after.fine_tuned_model, after.error) == ("cancelled", None, None)
    # The job has no worker from the cancel on; the old worker's next report is refused, and it stops.
    assert transitions.jobs.get(job.id).worker_id is None
    with pytest.raises(APIError) as refused:
        transitions.report(job.id, "w1", ProgressReport(trained_steps=3))
    assert refused.value.status == 409 and transitions.jobs.get(job.id).trained_steps == 0


def _pause_checkpoint(step: int) -> CheckpointReport:
    return CheckpointReport(step_number=step, metrics={"step": step}, result_files={}, state_blob=None, final=False,
                            paused=True)


def test_a_job_resumed_while_its_worker_saves_the_pause_checkpoint_trains_on_there(transitions):
    job = _queued_job(transitions)
    transitions.claim(job.id, "w1")
    assert transitions.pause(transitions.jobs.get(job.id)).status == "paused"
    assert transitions.report(job.id, "w1", ProgressReport()) == "pause"
    resumed = transitions.resume(transitions.jobs.get(job.id))
    assert (resumed.status, resumed.worker_id) == ("running", "w1")
    assert transitions.add_checkpoint(job.id, "w1", _pause_checkpoint(3)) == "continue"
    assert transitions.jobs.get(job.id).worker_id == "w1"
    assert transitions.report(job.id, "w1", ProgressReport(trained_steps=4)) == "continue"


def test_a_job_resumed_after_its_pause_checkpoint_is_queued_again(transitions):
    job = _queued_job(transitions)
    transitions.claim(job.id, "w1")
    transitions.pause(transitions.jobs.get(job.id))
    assert transitions.add_checkpoint(job.id, "w1", _pause_checkpoint(3)) == "pause"
    assert transitions.jobs.get(job.id).worker_id is None  # the worker let go
    resumed = transitions.resume(transitions.jobs.get(job.id))
    assert (resumed.status, resumed.worker_id) == ("queued", None)
    assert transitions.claim(job.id, "w2") is not None


def test_a_finished_job_cannot_be_cancelled_or_paused(transitions):
    job = _queued_job(transitions)
    transitions.claim(job.id, "w1")
    transitions.complete(job.id, "w1", CompletionReport(trained_tokens=5, result_files={}))
    done = transitions.jobs.get(job.id)
    assert done.status == "succeeded"
    for change in (transitions.cancel, transitions.pause, transitions.resume):
        with pytest.raises(APIError):
            change(done)
    assert transitions.jobs.get(job.id).status == "succeeded"
    assert done.resolved is not None and done.resolved["n_epochs"] >= 1  # resolved at the claim


def test_a_job_whose_validation_file_went_fails_at_the_claim(transitions):
    job = _queued_job(transitions)
    transitions.jobs.update(job.id, validation_file="file-gone")
    assert transitions.claim(job.id, "w1") is None
    failed = transitions.jobs.get(job.id)
    assert failed.status == "failed" and failed.worker_id is None
    assert failed.error == {"code": "invalid_validation_file", "param": "validation_file",
                            "message": "The validation file is no longer available."}
