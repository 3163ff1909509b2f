"""200 clients poll a job while it trains: no errors, and the latency they saw."""

from compat_tests.conftest import MEASUREMENTS
from compat_tests.http_load import load, run_loop
from compat_tests.test_files import chat_line, jsonl, processed
from compat_tests.test_fine_tuning import TINY, wait_for

CLIENTS = 200
SECONDS = 15  # enough for tens of thousands of requests and a few training steps; the suite has a time budget


def test_200_clients_poll_a_training_job_for_fifteen_seconds_without_an_error(start_server):
    server = start_server(worker=True)
    client = server.client()
    train = processed(client, jsonl(chat_line(i) for i in range(40)))
    job = client.fine_tuning.jobs.create(model=TINY, training_file=train.id,
                                         hyperparameters={"n_epochs": 50, "batch_size": 1})
    steps_before = wait_for(lambda: client.fine_tuning.jobs.retrieve(job.id).model_extra["trained_steps"], timeout=60)
    paths = [f"/v1/fine_tuning/jobs/{job.id}", f"/v1/fine_tuning/jobs/{job.id}/events"]
    result = run_loop(load(server.port, paths, clients=CLIENTS, seconds=SECONDS))
    during = client.fine_tuning.jobs.retrieve(job.id)
    client.fine_tuning.jobs.cancel(job.id)
    MEASUREMENTS.append(
        f"load: {CLIENTS} clients × {SECONDS} s polling job retrieve + events while it trained: "
        f"{result['requests']} requests, {result['requests_per_second']:.0f}/s, p50 {result['p50_ms']:.1f} ms, "
        f"p99 {result['p99_ms']:.1f} ms, {result['errors']} errors; the job trained steps "
        f"{steps_before}→{during.model_extra['trained_steps']}"
    )
    assert result["errors"] == 0, result["first_errors"]
    assert result["requests"] > CLIENTS
    assert during.status == "running" and during.model_extra["trained_steps"] > steps_before
