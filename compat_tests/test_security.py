"""Bad input and attacks on a real server: each gets a clear 4xx, nothing lands outside the data dir,
keys stay out of the logs, and one project never reaches another's files, jobs, checkpoints or models."""

import socket

import httpx2
import openai
import pytest

from compat_tests.server_process import ServerProcess
from compat_tests.test_files import chat_line, jsonl, processed
from compat_tests.test_fine_tuning import TINY, wait_done

ALPHA_KEY, BETA_KEY = "sk-alpha-5f1c0e9d8b7a", "sk-beta-0a9b8c7d6e5f"
WORKER_TOKEN = "wt-3e4d5c6b7a8f9e0d"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory) -> ServerProcess:
    root = tmp_path_factory.mktemp("security")
    process = ServerProcess(
        root / "data",
        env={"GXFT_API_KEYS": f"{ALPHA_KEY}=alpha,{BETA_KEY}=beta", "GXFT_WORKER_TOKEN": WORKER_TOKEN},
        worker=True,
        log_level="debug",
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def trained(keyed):
    """A fine-tuned model of project alpha, with its files, job, events and checkpoints."""
    alpha = keyed.client(ALPHA_KEY)
    training = processed(alpha, jsonl(chat_line(i) for i in range(12)))
    job = alpha.fine_tuning.jobs.create(model=TINY, training_file=training.id, hyperparameters={"n_epochs": 2})
    done = wait_done(alpha, job.id, patience=120)
    assert done.status == "succeeded", done.error
    return training, done


def _error(response: httpx2.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    return response.json()["error"]


def _multipart(filename: bytes, content: bytes = b"{}\n", purpose: bytes = b"fine-tune") -> tuple[bytes, str]:
    boundary = "gxftboundary"
    body = (
        b"--gxftboundary\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n" + purpose + b"\r\n"
        b"--gxftboundary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + filename + b"\"\r\n"
        b"Content-Type: application/octet-stream\r\n\r\n" + content + b"\r\n--gxftboundary--\r\n"
    )
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("filename", [b"../../evil.jsonl", b"/etc/evil.jsonl", b"..\\..\\evil.jsonl",
                                      b"data/evil.jsonl"])
def test_a_path_as_file_name_keeps_its_last_part_and_writes_nowhere_else(keyed, filename):
    before = sorted(p.name for p in keyed.data_dir.parent.iterdir())
    body, content_type = _multipart(filename)
    response = httpx2.post(f"{keyed.base_url}/v1/files", content=body,
                           headers={"Authorization": f"Bearer {ALPHA_KEY}", "Content-Type": content_type})
    assert response.status_code == 200 and response.json()["filename"] == "evil.jsonl"
    assert sorted(p.name for p in keyed.data_dir.parent.iterdir()) == before
    assert list((keyed.data_dir / "blobs" / "tmp").iterdir()) == []


@pytest.mark.parametrize("filename, words", [
    (b"..", "not a file name"),
    (b"dir/..", "not a file name"),
    (b"evil\x00.jsonl", "control characters"),
    (b"x" * 300 + b".jsonl", "longer than 255 characters"),
    (b"x" * 10_000 + b".jsonl", "Maximum header size exceeded"),
])
def test_hostile_file_names_are_refused_and_nothing_is_written(keyed, filename, words):
    before = sorted(p.name for p in keyed.data_dir.parent.iterdir())
    blobs = sorted(p.name for p in (keyed.data_dir / "blobs").iterdir())
    body, content_type = _multipart(filename)
    response = httpx2.post(f"{keyed.base_url}/v1/files", content=body,
                           headers={"Authorization": f"Bearer {ALPHA_KEY}", "Content-Type": content_type})
    error = _error(response, 422 if len(filename) > 1000 else 400)
    assert words in error["message"]
    assert sorted(p.name for p in keyed.data_dir.parent.iterdir()) == before
    assert sorted(p.name for p in (keyed.data_dir / "blobs").iterdir()) == blobs
    assert list((keyed.data_dir / "blobs" / "tmp").iterdir()) == []


def test_oversized_and_deeply_nested_json_bodies(keyed):
    headers = {"Authorization": f"Bearer {ALPHA_KEY}", "Content-Type": "application/json"}
    url = f"{keyed.base_url}/v1/fine_tuning/jobs"
    huge = b'{"model": "' + b"a" * (100 * 1024 * 1024) + b'", "training_file": "x"}'
    assert _error(httpx2.post(url, content=huge, headers=headers), 413)["code"] == "request_too_large"

    def chunked():  # no Content-Length: the limit holds while streaming too
        yield huge[: 50 * 1024 * 1024]
        yield huge[50 * 1024 * 1024:]

    assert _error(httpx2.post(url, content=chunked(), headers=headers), 413)["code"] == "request_too_large"
    deep = '{"model": "m", "training_file": "f", "hyperparameters": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert "nested too deeply" in _error(httpx2.post(url, content=deep, headers=headers), 422)["message"]
    deep_objects = '{"model": "m", "training_file": "f", "method": ' + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "}"
    assert _error(httpx2.post(url, content=deep_objects, headers=headers), 422)["code"] == "invalid_body"
    assert httpx2.get(f"{keyed.base_url}/healthz").status_code == 200


@pytest.mark.parametrize("path", [
    "/v1/files/' OR '1'='1",
    "/v1/files/1; DROP TABLE files; --/content",
    "/v1/files/%2e%2e/content",
    "/v1/files/..%2f..%2fgxft.sqlite3/content",
    "/v1/files/%00",
    "/v1/fine_tuning/jobs/ftjob-x' UNION SELECT * FROM jobs --",
    "/v1/fine_tuning/jobs/..%2F..%2F/events",
    "/v1/models/..%2F..%2F..%2Fetc%2Fpasswd",
    "/v1/models/ft:x' OR 1=1 --",
])
def test_ids_with_sql_or_path_syntax_are_404(keyed, trained, path):
    response = httpx2.get(keyed.base_url + path, headers={"Authorization": f"Bearer {ALPHA_KEY}"})
    assert response.status_code == 404, response.text
    assert response.json()["error"]["message"]
    alpha = keyed.client(ALPHA_KEY)
    assert trained[0].id in {f.id for f in alpha.files.list()}  # nothing was dropped


def test_invalid_utf8_and_a_50_mb_line_fail_validation_by_line(keyed):
    alpha = keyed.client(ALPHA_KEY)
    rows = jsonl(chat_line(i) for i in range(12))
    broken = alpha.files.create(file=("utf8.jsonl", rows + b'{"messages": "\xff\xfe"}\n'), purpose="fine-tune")
    broken = alpha.files.wait_for_processing(broken.id, poll_interval=0.05)
    assert broken.status == "error" and "line 13: not valid UTF-8" in broken.status_details
    long_line = b'{"messages": [{"role": "user", "content": "' + b"a" * (50 * 1024 * 1024) + b'"}]}\n'
    huge = alpha.files.create(file=("long.jsonl", long_line + rows), purpose="fine-tune")
    huge = alpha.files.wait_for_processing(huge.id, poll_interval=0.1, max_wait_seconds=60)
    assert huge.status == "error" and "line 1: the line is longer than 8 MiB" in huge.status_details
    with pytest.raises(openai.BadRequestError) as error:
        alpha.fine_tuning.jobs.create(model=TINY, training_file=huge.id)
    assert error.value.code == "invalid_file" and "line 1" in error.value.message


def test_request_head_over_the_limit_is_431(keyed):
    response = httpx2.get(f"{keyed.base_url}/v1/files",
                          headers={"Authorization": f"Bearer {ALPHA_KEY}", "X-Padding": "a" * 200_000})
    assert _error(response, 431)["code"] == "headers_too_large"
    with socket.create_connection(("127.0.0.1", keyed.port)) as sock:  # an endless header line
        sock.sendall(b"GET /v1/files HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        sent = 0
        try:
            while sent < 8 * 1024 * 1024:
                sock.sendall(b"a" * 65536)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert sent < 8 * 1024 * 1024, "the server kept reading an endless header"
    assert httpx2.get(f"{keyed.base_url}/healthz").status_code == 200
    # The cap is per request: many requests and a large body on one keep-alive connection are fine.
    with httpx2.Client(base_url=keyed.base_url, headers={"Authorization": f"Bearer {ALPHA_KEY}"}) as client:
        assert {client.get("/healthz", headers={"X-Padding": "a" * 300}).status_code for _ in range(500)} == {200}
        body, content_type = _multipart(b"big.bin", b"x" * (4 * 1024 * 1024), purpose=b"user_data")
        assert client.post("/v1/files", content=body, headers={"Content-Type": content_type}).status_code == 200
        assert client.get("/v1/files").status_code == 200


def test_internal_api_refuses_public_keys_and_anonymous_calls(keyed, trained):
    training, job = trained
    for headers in ({}, {"Authorization": f"Bearer {ALPHA_KEY}"}, {"Authorization": "Bearer wrong"}):
        for method, path in (("POST", f"/internal/jobs/{job.id}/claim"),
                             ("GET", f"/internal/jobs/{job.id}/files/{training.id}"),
                             ("POST", "/internal/workers/heartbeat")):
            response = httpx2.request(method, keyed.base_url + path, headers=headers)
            assert _error(response, 401)["code"] == "invalid_worker_token"
    # The worker token is no API key either.
    response = httpx2.get(f"{keyed.base_url}/v1/files", headers={"Authorization": f"Bearer {WORKER_TOKEN}"})
    assert _error(response, 401)["code"] == "invalid_api_key"


def test_one_project_never_reaches_another_projects_objects(keyed, trained):
    training, job = trained
    alpha, beta = keyed.client(ALPHA_KEY), keyed.client(BETA_KEY)
    checkpoints = list(alpha.fine_tuning.jobs.checkpoints.list(job.id))
    assert checkpoints
    result_files = [*job.result_files, *(f for c in checkpoints for f in c.model_extra["result_files"])]
    model = job.fine_tuned_model
    attempts = {
        "files.retrieve": lambda: beta.files.retrieve(training.id),
        "files.content": lambda: beta.files.content(training.id),
        "files.delete": lambda: beta.files.delete(training.id),
        **{f"result file {i}": (lambda f=f: beta.files.content(f)) for i, f in enumerate(result_files)},
        "jobs.retrieve": lambda: beta.fine_tuning.jobs.retrieve(job.id),
        "jobs.cancel": lambda: beta.fine_tuning.jobs.cancel(job.id),
        "jobs.pause": lambda: beta.fine_tuning.jobs.pause(job.id),
        "jobs.resume": lambda: beta.fine_tuning.jobs.resume(job.id),
        "jobs.list_events": lambda: beta.fine_tuning.jobs.list_events(job.id),
        "checkpoints.list": lambda: beta.fine_tuning.jobs.checkpoints.list(job.id),
        "checkpoint retrieve": lambda: beta.get(
            f"/fine_tuning/jobs/{job.id}/checkpoints/{checkpoints[0].id}", cast_to=object),
        "models.retrieve": lambda: beta.models.retrieve(model),
        "checkpoint model": lambda: beta.models.retrieve(checkpoints[-1].fine_tuned_model_checkpoint),
        "models.delete": lambda: beta.models.delete(model),
        "export": lambda: beta.post(f"/models/{model}/export", body={}, cast_to=object),
        "chat": lambda: beta.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}]),
    }
    for name, attempt in attempts.items():
        with pytest.raises(openai.NotFoundError):
            attempt()
            pytest.fail(f"{name} reached project alpha's object")
    for param, request in (
        ("training_file", {"model": TINY, "training_file": training.id}),
        ("model", {"model": model, "training_file": training.id}),
    ):
        with pytest.raises(openai.BadRequestError) as error:
            beta.fine_tuning.jobs.create(**request)
        assert error.value.param == param
    assert training.id not in {f.id for f in beta.files.list()}
    assert job.id not in {j.id for j in beta.fine_tuning.jobs.list()}
    assert model not in {m.id for m in beta.models.list()}
    # Alpha's objects are untouched by all of it.
    assert alpha.files.retrieve(training.id).id == training.id
    assert alpha.fine_tuning.jobs.retrieve(job.id).status == "succeeded"
    assert alpha.models.retrieve(model).id == model


def test_keys_and_worker_token_never_reach_the_logs(keyed, trained):
    httpx2.get(f"{keyed.base_url}/v1/files", headers={"Authorization": "Bearer sk-wrong-9d8c7b6a"})
    httpx2.get(f"{keyed.base_url}/internal/jobs/x/state/x", headers={"Authorization": f"Bearer {ALPHA_KEY}"})
    log = keyed.log()
    assert "training job" in log or "GXFT ready" in log  # the log is the one the server and worker write
    for secret in (ALPHA_KEY, BETA_KEY, WORKER_TOKEN, "sk-wrong-9d8c7b6a"):
        assert secret not in log
