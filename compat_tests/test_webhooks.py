"""Webhooks as OpenAI sends them: a project's endpoints, managed with the SDK's `client.webhooks`, receive
`fine_tuning.job.succeeded`, `.failed` and `.cancelled`, signed so that `client.webhooks.unwrap` verifies them;
a delivery the receiver refuses is tried again with the same id and body, also after the server is killed."""

import http.server
import threading
import time

import openai
import pytest
from openai.types.webhooks import (
    FineTuningJobCancelledWebhookEvent,
    FineTuningJobFailedWebhookEvent,
    FineTuningJobSucceededWebhookEvent,
)

from compat_tests.conftest import MEASUREMENTS, SAMPLE_DATA
from compat_tests.server_process import ServerProcess, free_port
from compat_tests.test_files import processed
from compat_tests.test_fine_tuning import TINY, wait_done, wait_for_job

FINE_TUNING_EVENTS = ["fine_tuning.job.succeeded", "fine_tuning.job.failed", "fine_tuning.job.cancelled"]
QUICK_RETRIES = {"GXFT_WEBHOOK_RETRY_SECONDS": "0.2"}


class Receiver:
    """A local webhook receiver: it answers the statuses it is given, in turn, then `then`, and keeps what came."""

    def __init__(self, statuses: tuple[int, ...] = (), then: int = 200):
        self.statuses = list(statuses)
        self.then = then
        self.received: list[tuple[dict[str, str], bytes, float, int]] = []  # headers, body, when, status answered
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the name http.server calls)
                body = self.rfile.read(int(self.headers["content-length"]))
                status = receiver.statuses.pop(0) if receiver.statuses else receiver.then
                receiver.received.append((dict(self.headers.items()), body, time.monotonic(), status))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, patience: float = 60) -> list[tuple[dict[str, str], bytes, float, int]]:
        deadline = time.monotonic() + patience
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{len(self.received)} of {count} deliveries came: {self.received}"
            time.sleep(0.02)
        return self.received

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    started = Receiver((500,))
    yield started
    started.close()


def _unwrap(client: openai.OpenAI, delivery, secret: str):
    headers, body, _, _ = delivery
    return client.webhooks.unwrap(body, headers, secret=secret)


def test_each_end_of_a_job_is_delivered_signed_and_a_refused_one_again_with_the_same_id(start_server, receiver):
    server = start_server(env=QUICK_RETRIES, worker=True)
    client = server.client()
    endpoint = client.webhooks.create(url=receiver.url, name="ci", event_types=FINE_TUNING_EVENTS)
    assert endpoint.signing_secret.startswith("whsec_") and endpoint.signing_secret_hint.endswith(
        endpoint.signing_secret[-4:])
    train = processed(client, (SAMPLE_DATA / "sample_training_data.jsonl").read_bytes())

    succeeded = client.fine_tuning.jobs.create(model=TINY, training_file=train.id, hyperparameters={"n_epochs": 1})
    assert wait_done(client, succeeded.id, patience=120).status == "succeeded"
    first, second = receiver.wait_for(2)  # the receiver refused the first attempt with a 500
    assert (first[3], second[3]) == (500, 200)
    assert first[0]["webhook-id"] == second[0]["webhook-id"] and first[1] == second[1]
    event = _unwrap(client, second, endpoint.signing_secret)
    assert isinstance(event, FineTuningJobSucceededWebhookEvent) and event.data.id == succeeded.id
    assert event.object == "event" and event.id.startswith("evt_")

    # While the worker trains a long job, a queued one loses its training file; the long one is cancelled,
    # and the worker, free, finds that the queued one cannot train: it fails.
    cancelled = client.fine_tuning.jobs.create(model=TINY, training_file=train.id, hyperparameters={"n_epochs": 50})
    wait_for_job(client, cancelled.id, lambda job: job.status == "running")
    doomed_file = processed(client, (SAMPLE_DATA / "sample_training_data.jsonl").read_bytes())
    doomed = client.fine_tuning.jobs.create(model=TINY, training_file=doomed_file.id)
    client.files.delete(doomed_file.id)
    asked = time.monotonic()
    client.fine_tuning.jobs.cancel(cancelled.id)
    delivery = receiver.wait_for(3)[2]
    MEASUREMENTS.append(f"Webhook delivery latency, cancel answered → receiver: {(delivery[2] - asked) * 1000:.0f} ms")
    event = _unwrap(client, delivery, endpoint.signing_secret)
    assert isinstance(event, FineTuningJobCancelledWebhookEvent) and event.data.id == cancelled.id

    assert wait_done(client, doomed.id, patience=60).status == "failed"
    event = _unwrap(client, receiver.wait_for(4)[3], endpoint.signing_secret)
    assert isinstance(event, FineTuningJobFailedWebhookEvent) and event.data.id == doomed.id

    with pytest.raises(openai.InvalidWebhookSignatureError):  # a body changed on the way is refused
        headers, body, _, _ = receiver.received[3]
        client.webhooks.unwrap(body.replace(doomed.id.encode(), cancelled.id.encode()), headers,
                               secret=endpoint.signing_secret)
    assert len(receiver.received) == 4  # each event once, once accepted


def test_a_delivery_owed_when_the_server_is_killed_comes_after_the_restart_with_the_same_id(tmp_path):
    receiver = Receiver(then=503)  # refusing, until the server has been killed
    server = ServerProcess(tmp_path / "data", env=QUICK_RETRIES, worker=False)  # the job is cancelled while queued
    try:
        client = server.client()
        endpoint = client.webhooks.create(url=receiver.url, name="restart", event_types=FINE_TUNING_EVENTS)
        train = processed(client, (SAMPLE_DATA / "sample_training_data.jsonl").read_bytes())
        job = client.fine_tuning.jobs.create(model=TINY, training_file=train.id)
        client.fine_tuning.jobs.cancel(job.id)
        refused = receiver.wait_for(1)[0]
        server.kill()
        receiver.then = 200

        server = ServerProcess(tmp_path / "data", env=QUICK_RETRIES, worker=False)  # the job is cancelled while queued
        deadline = time.monotonic() + 30
        while not any(status == 200 for *_, status in receiver.received):
            assert time.monotonic() < deadline, receiver.received
            time.sleep(0.05)
        accepted = [delivery for delivery in receiver.received if delivery[3] == 200]
        assert len(accepted) == 1
        assert {headers["webhook-id"] for headers, *_ in receiver.received} == {refused[0]["webhook-id"]}
        assert accepted[0][1] == refused[1]
        event = _unwrap(server.client(), accepted[0], endpoint.signing_secret)
        assert isinstance(event, FineTuningJobCancelledWebhookEvent) and event.data.id == job.id
    finally:
        server.stop()
        receiver.close()


def test_endpoints_are_managed_as_at_openai_and_kept_to_their_project(start_server):
    server = start_server(env={"GXFT_API_KEYS": "key-a=alpha,key-b=beta"}, worker=False)
    alpha, beta = server.client("key-a"), server.client("key-b")
    receiver = Receiver()
    try:
        assert alpha.webhooks.event_types.list().data == FINE_TUNING_EVENTS
        first = alpha.webhooks.create(url=receiver.url, name="first", event_types=["fine_tuning.job.succeeded"])
        second = alpha.webhooks.create(url=receiver.url, name="second", event_types=["fine_tuning.job.failed"])
        assert [e.id for e in alpha.webhooks.list()] == [second.id, first.id]  # newest first
        assert [e.id for e in alpha.webhooks.list(limit=1, after=second.id)] == [first.id]
        assert list(beta.webhooks.list()) == []
        with pytest.raises(openai.NotFoundError):
            beta.webhooks.retrieve(first.id)

        unchanged = alpha.webhooks.update(first.id, name="first")
        assert unchanged.updated_at == first.updated_at
        changed = alpha.webhooks.update(first.id, name="renamed", event_types=FINE_TUNING_EVENTS)
        assert (changed.name, changed.event_types) == ("renamed", FINE_TUNING_EVENTS)

        rotated = alpha.webhooks.rotate_secret(first.id, keep_old_secret_active_for_24_hours=True)
        assert rotated.signing_secret != first.signing_secret
        result = alpha.webhooks.test(first.id, event_type="fine_tuning.job.succeeded")
        assert (result.status_code, result.webhook_endpoint_id) == (200, first.id)
        (sample,) = receiver.wait_for(1)
        for secret in (rotated.signing_secret, first.signing_secret):  # the old secret still signs, for 24 h
            assert isinstance(_unwrap(alpha, sample, secret), FineTuningJobSucceededWebhookEvent)
        alpha.webhooks.rotate_secret(first.id)
        alpha.webhooks.test(first.id, event_type="fine_tuning.job.failed")
        with pytest.raises(openai.InvalidWebhookSignatureError):  # rotated without keeping it: gone at once
            _unwrap(alpha, receiver.wait_for(2)[1], rotated.signing_secret)

        for wrong, param in ((dict(url=receiver.url, name="x", event_types=["batch.completed"]), "event_types"),
                             (dict(url="ftp://example.com/x", name="x", event_types=FINE_TUNING_EVENTS), "url"),
                             (dict(url=receiver.url, name="", event_types=FINE_TUNING_EVENTS), "name"),
                             (dict(url=receiver.url, name="x", event_types=[]), "event_types")):
            with pytest.raises(openai.BadRequestError) as refused:
                alpha.webhooks.create(**wrong)
            assert refused.value.body["param"] == param, refused.value.body
        with pytest.raises(openai.BadRequestError, match="could not be reached"):
            closed = alpha.webhooks.create(url=f"http://127.0.0.1:{free_port()}/", name="closed",
                                           event_types=FINE_TUNING_EVENTS)
            alpha.webhooks.test(closed.id, event_type="fine_tuning.job.cancelled")

        deleted = alpha.webhooks.delete(first.id)
        assert (deleted.id, deleted.deleted, deleted.object) == (first.id, True, "webhook_endpoint.deleted")
        with pytest.raises(openai.NotFoundError):
            alpha.webhooks.retrieve(first.id)
    finally:
        receiver.close()
