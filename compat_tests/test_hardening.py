"""Findings of an attack run on a real server, each kept as a regression test: terminal states stay
final, uploads are whole or refused, nothing expired lingers, no input reaches a 500.

Some tests speak the internal API themselves, as a worker would, on a server started without its
own worker: that is how a late or hostile report reaches the server."""

import concurrent.futures

import httpx2
import pytest

from compat_tests.server_process import ServerProcess
from compat_tests.test_files import chat_line, jsonl, processed
from compat_tests.test_fine_tuning import TINY, all_events

WORKER_TOKEN = "wt-hardening-7c1d"


@pytest.fixture(scope="module")
def bare(tmp_path_factory) -> ServerProcess:
    """A server with no worker of its own: the tests play the worker over the internal API."""
    process = ServerProcess(tmp_path_factory.mktemp("hardening") / "data", worker=False,
                            env={"GXFT_WORKER_TOKEN": WORKER_TOKEN})
    yield process
    process.stop()


class Worker:
    """The internal API as a worker speaks it."""

    def __init__(self, server: ServerProcess, worker_id: str):
        self.worker_id = worker_id
        self.http = httpx2.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {WORKER_TOKEN}"})

    def post(self, path: str, body: dict) -> httpx2.Response:
        return self.http.post(path, json={"worker_id": self.worker_id, **body})

    def claim(self, job_id: str) -> httpx2.Response:
        return self.post(f"/internal/jobs/{job_id}/claim", {})

    def report(self, job_id: str, **body) -> httpx2.Response:
        return self.post(f"/internal/jobs/{job_id}/report", body)

    def complete(self, job_id: str) -> httpx2.Response:
        return self.post(f"/internal/jobs/{job_id}/complete", {"trained_tokens": 10, "result_files": {}})

    def fail(self, job_id: str) -> httpx2.Response:
        return self.post(f"/internal/jobs/{job_id}/fail", {"code": "late", "message": "a late failure"})


def _claimed_job(server: ServerProcess, worker: Worker) -> str:
    client = server.client()
    training = processed(client, jsonl(chat_line(i) for i in range(12)))
    job = client.fine_tuning.jobs.create(model=TINY, training_file=training.id)
    assert worker.claim(job.id).status_code == 200
    return job.id


def test_reports_on_a_cancelled_job_change_nothing(bare):
    worker, client = Worker(bare, "w-late"), bare.client()
    job_id = _claimed_job(bare, worker)
    assert client.fine_tuning.jobs.cancel(job_id).status == "cancelled"
    before = [(e.id, e.message) for e in all_events(client, job_id)]
    step = {"created_at": 1, "message": "Step 4/200: training loss=1.00", "type": "metrics", "data": {"step": 4}}
    answers = [worker.report(job_id, trained_steps=4, events=[step]), worker.complete(job_id), worker.fail(job_id)]
    assert [answer.status_code for answer in answers] == [409, 409, 409]
    job = client.fine_tuning.jobs.retrieve(job_id)
    assert (job.status, job.fine_tuned_model, job.error) == ("cancelled", None, None)
    assert job.model_extra["trained_steps"] == 0
    assert [(e.id, e.message) for e in all_events(client, job_id)] == before
    assert before[-1][1] == "The job was cancelled"
    assert job.fine_tuned_model not in {model.id for model in client.models.list()}


def test_a_completion_racing_a_cancel_has_one_outcome(bare):
    client = bare.client()
    outcomes = []
    for round_number in range(10):
        worker = Worker(bare, f"w-race-{round_number}")
        job_id = _claimed_job(bare, worker)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            completed = pool.submit(worker.complete, job_id)
            cancelled = pool.submit(httpx2.post, f"{bare.base_url}/v1/fine_tuning/jobs/{job_id}/cancel",
                                    headers={"Authorization": "Bearer sk-test"})
        statuses = (completed.result().status_code, cancelled.result().status_code)
        job = client.fine_tuning.jobs.retrieve(job_id)
        events = [e.message for e in all_events(client, job_id)]
        if job.status == "succeeded":
            assert statuses == (200, 400) and job.fine_tuned_model and "The job was cancelled" not in events
            assert events[-1] == "The job has successfully completed"
        else:
            assert job.status == "cancelled" and statuses == (409, 200) and job.fine_tuned_model is None
            assert events[-1] == "The job was cancelled"
        outcomes.append(job.status)
    assert set(outcomes) <= {"succeeded", "cancelled"}
