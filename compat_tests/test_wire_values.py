"""Values of the types OpenAI's schema gives them, seen through the official client in strict mode: numbers
that JSON Schema counts as integers, strings and objects where the schema has no null, fields OpenAI
documents and GXFT ignores, and the terminal event as the newest one."""

import time

import httpx2
import openai
import pytest

from compat_tests.conftest import SAMPLE_DATA
from compat_tests.test_files import processed
from compat_tests.test_fine_tuning import TINY, all_events, wait_done, wait_for_job


@pytest.fixture(scope="module")
def training_file(server):
    return processed(server.client(), (SAMPLE_DATA / "sample_training_data.jsonl").read_bytes())


def _post(server, path: str, body: dict) -> httpx2.Response:
    return httpx2.post(server.base_url + path, json=body, timeout=120, headers={"Authorization": "Bearer sk-test"})


def test_a_whole_float_is_an_integer(server, training_file):
    job = _post(server, "/v1/fine_tuning/jobs", {"model": TINY, "training_file": training_file.id, "seed": 5628.0,
                                                 "hyperparameters": {"n_epochs": 1.0}})
    assert job.status_code == 200, job.text
    assert job.json()["seed"] == 5628
    assert wait_done(server.client(), job.json()["id"]).status == "succeeded"
    refused = _post(server, "/v1/fine_tuning/jobs", {"model": TINY, "training_file": training_file.id, "seed": 5.5})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "seed"
    chat = _post(server, "/v1/chat/completions", {"model": TINY, "messages": [{"role": "user", "content": "Hi"}],
                                                  "max_tokens": 2.0, "n": 1.0})
    assert chat.status_code == 200 and chat.json()["usage"]["completion_tokens"] <= 2


def test_completions_carry_a_system_fingerprint_string(client):
    answer = client.chat.completions.create(model=TINY, messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
    assert answer.system_fingerprint is not None and answer.system_fingerprint.startswith("fp_")
    chunks = list(client.chat.completions.create(model=TINY, messages=[{"role": "user", "content": "Hi"}],
                                                 max_tokens=2, stream=True))
    assert {chunk.system_fingerprint for chunk in chunks} == {answer.system_fingerprint}
    text = client.completions.create(model=TINY, prompt="Hi", max_tokens=2)
    assert text.system_fingerprint == answer.system_fingerprint


def test_documented_bookkeeping_fields_are_accepted(client):
    answer = client.chat.completions.create(
        model=TINY, messages=[{"role": "user", "content": "Hi"}], max_tokens=2, prompt_cache_key="k",
        safety_identifier="user-1", extra_body={"prompt_cache_options": {"mode": "auto"}, "moderation": None},
    )
    assert answer.choices[0].finish_reason in ("stop", "length")
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=TINY, messages=[{"role": "user", "content": "Hi"}], max_tokens=2,
                                       extra_body={"moderation": {"model": "omni-moderation-latest"}})
    assert refused.value.param == "moderation" and "not supported" in refused.value.message


def test_event_data_and_integration_tags_are_never_null(server, training_file):
    client = server.client()
    job = client.fine_tuning.jobs.create(
        model=TINY, training_file=training_file.id, hyperparameters={"n_epochs": 1},
        integrations=[{"type": "wandb", "wandb": {"project": "p"}}],
    )
    assert job.integrations and job.integrations[0].wandb.tags == []
    wait_done(client, job.id)
    raw = httpx2.get(f"{server.base_url}/v1/fine_tuning/jobs/{job.id}/events?limit=100",
                     headers={"Authorization": "Bearer sk-test"}).json()
    started = [event for event in raw["data"] if event["message"] == "Fine-tuning job started"]
    assert started and all(isinstance(event["data"], dict) for event in raw["data"])


def test_the_cancel_event_is_the_newest(server, training_file):
    client = server.client()
    job = client.fine_tuning.jobs.create(model=TINY, training_file=training_file.id,
                                         hyperparameters={"n_epochs": 50})
    wait_for_job(client, job.id, lambda current: (current.model_extra or {}).get("trained_steps", 0) >= 3)
    client.fine_tuning.jobs.cancel(job.id)
    time.sleep(2)  # the worker's reports in flight arrive, and are refused
    assert all_events(client, job.id)[-1].message == "The job was cancelled"
