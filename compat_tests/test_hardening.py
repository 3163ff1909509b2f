"""Findings of an attack run on a real server, each kept as a regression test: terminal states stay
final, uploads are whole or refused, nothing expired lingers, no input reaches a 500.

Some tests speak the internal API themselves, as a worker would, on a server started without its
own worker: that is how a late or hostile report reaches the server."""

import asyncio
import concurrent.futures
import json
import os
import sqlite3
import subprocess
import sys
import time

import httpx2
import openai
import pytest

from compat_tests.server_process import ServerProcess
from compat_tests.test_files import chat_line, jsonl, processed
from compat_tests.test_fine_tuning import TINY, all_events, wait_done

WORKER_TOKEN = "wt-hardening-7c1d"


@pytest.fixture(scope="module")
def bare(tmp_path_factory) -> ServerProcess:
    """A server with no worker of its own: the tests play the worker over the internal API."""
    process = ServerProcess(tmp_path_factory.mktemp("hardening") / "data", worker=False,
                            env={"GXFT_WORKER_TOKEN": WORKER_TOKEN})
    yield process
    process.stop()


class Worker:
    """The internal API as a worker speaks it: registered with the worker token, then with its own key."""

    def __init__(self, server: ServerProcess, accelerator: str = "cpu"):
        registered = httpx2.post(server.base_url + "/internal/workers/register", json={"accelerator": accelerator},
                                 headers={"Authorization": f"Bearer {WORKER_TOKEN}"})
        assert registered.status_code == 200, registered.text
        self.worker_id = registered.json()["worker_id"]
        self.http = httpx2.Client(base_url=server.base_url,
                                  headers={"Authorization": f"Bearer {registered.json()['worker_key']}"})

    def post(self, path: str, body: dict | None = None) -> httpx2.Response:
        return self.http.post(path, json=body) if body is not None else self.http.post(path)

    def claim(self, job_id: str) -> httpx2.Response:
        return self.post(f"/internal/jobs/{job_id}/claim")

    def report(self, job_id: str, **body) -> httpx2.Response:
        return self.post(f"/internal/jobs/{job_id}/report", body)

    def complete(self, job_id: str) -> httpx2.Response:
        return self.post(f"/internal/jobs/{job_id}/complete", {"trained_tokens": 10, "result_files": {}})

    def fail(self, job_id: str, message: str = "a late failure") -> httpx2.Response:
        return self.post(f"/internal/jobs/{job_id}/fail", {"code": "late", "message": message})


def _claimed_job(server: ServerProcess, worker: Worker) -> str:
    client = server.client()
    training = processed(client, jsonl(chat_line(i) for i in range(12)))
    job = client.fine_tuning.jobs.create(model=TINY, training_file=training.id)
    assert worker.claim(job.id).status_code == 200
    return job.id


def test_reports_on_a_cancelled_job_change_nothing(bare):
    worker, client = Worker(bare), bare.client()
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
    for _ in range(10):
        worker = Worker(bare)
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


def _multipart(fields: dict[str, str], content: bytes, filename: str = "data.bin") -> bytes:
    parts = [f'--b\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts.append(f'--b\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n\r\n'.encode()
                 + content + b"\r\n--b--\r\n")
    return b"".join(parts)


def _post_form(server: ServerProcess, body: bytes) -> httpx2.Response:
    return httpx2.post(server.base_url + "/v1/files", content=body, timeout=60,
                       headers={"Authorization": "Bearer sk-test", "Content-Type": "multipart/form-data; boundary=b"})


def _stored(server: ServerProcess) -> tuple[set[str], list[str]]:
    blobs = server.data_dir / "blobs"
    return ({f.id for f in server.client().files.list()},
            sorted(p.name for p in (blobs / "tmp").iterdir()))


@pytest.mark.parametrize("cut", ["half the file part", "10 bytes short", "no closing boundary"])
def test_a_truncated_upload_is_refused_and_leaves_nothing(bare, cut):
    whole = _multipart({"purpose": "user_data"}, b"x" * 100_000)
    body = {"half the file part": whole[: len(whole) // 2], "10 bytes short": whole[:-10],
            "no closing boundary": whole[: -len(b"--b--\r\n")]}[cut]
    files_before, _ = _stored(bare)
    answer = _post_form(bare, body)  # with a Content-Length that matches what is sent
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "incomplete_upload"
    assert _stored(bare) == (files_before, [])
    assert _post_form(bare, whole).status_code == 200  # the whole body is taken


def test_form_fields_are_bounded_in_number_and_size(bare):
    many = _multipart({f"field{i}": "x" for i in range(10_000)}, b"tiny")
    answer = _post_form(bare, many)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "form_too_large"
    heavy = _multipart({f"field{i}": "x" * 60_000 for i in range(8)}, b"tiny")
    answer = _post_form(bare, heavy)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "form_too_large"
    assert _stored(bare)[1] == []


def test_a_download_racing_a_delete_is_whole_or_404(bare):
    client = bare.client()
    payload = bytes(range(256)) * 4_000  # 1 MB
    outcomes = {"whole": 0, "404": 0}
    for _ in range(60):
        file_id = client.files.create(file=("race.bin", payload), purpose="user_data").id
        with concurrent.futures.ThreadPoolExecutor(7) as pool:
            downloads = [pool.submit(httpx2.get, f"{bare.base_url}/v1/files/{file_id}/content",
                                     headers={"Authorization": "Bearer sk-test"}, timeout=60) for _ in range(6)]
            pool.submit(client.files.delete, file_id).result()
        for answer in (download.result() for download in downloads):
            assert answer.status_code in (200, 404), answer.text
            if answer.status_code == 200:
                assert answer.content == payload, "a body cut short"
                outcomes["whole"] += 1
            else:
                outcomes["404"] += 1
    assert sum(outcomes.values()) == 360
    assert "Traceback" not in bare.log()


def _expire(server: ServerProcess, file_id: str) -> None:
    """As if the hour had passed: the shortest expiry OpenAI allows is 3600 s."""
    with sqlite3.connect(server.data_dir / "gxft.sqlite3") as db:
        db.execute("UPDATE files SET expires_at = ? WHERE id = ?", (int(time.time()) - 1, file_id))


def test_an_expired_file_is_swept_and_never_served(start_server):
    server = start_server(env={"GXFT_LEASE_SECONDS": "2", "GXFT_WORKER_TOKEN": WORKER_TOKEN})
    client = server.client()
    expiring = {"expires_after": {"anchor": "created_at", "seconds": 3600}}
    running, at_restart = (client.files.create(file=(f"{name}.jsonl", jsonl(chat_line(i) for i in range(12))),
                                               purpose="fine-tune", **expiring).id for name in ("running", "restart"))
    client.files.wait_for_processing(running, poll_interval=0.05)
    worker = Worker(server)
    job = client.fine_tuning.jobs.create(model=TINY, training_file=running)
    assert worker.claim(job.id).status_code == 200
    assert worker.http.get(f"/internal/jobs/{job.id}/files/{running}").status_code == 200

    _expire(server, running)
    assert worker.http.get(f"/internal/jobs/{job.id}/files/{running}").status_code == 404  # before the sweep too
    deadline = time.monotonic() + 30
    while (server.data_dir / "blobs" / running).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (server.data_dir / "blobs" / running).exists(), "the sweep did not remove the blob"

    server.stop()
    _expire(server, at_restart)
    restarted = ServerProcess(server.data_dir, env={"GXFT_WORKER_TOKEN": WORKER_TOKEN}, worker=False)
    try:
        assert not (server.data_dir / "blobs" / at_restart).exists()  # swept at start-up
        for file_id in (running, at_restart):
            with pytest.raises(openai.NotFoundError):
                restarted.client().files.retrieve(file_id)
    finally:
        restarted.stop()


def _raw(server: ServerProcess, method: str, path: str, body: str | None = None, **params) -> httpx2.Response:
    return httpx2.request(method, server.base_url + path, content=body, params=params, timeout=60,
                          headers={"Authorization": "Bearer sk-test", "Content-Type": "application/json"})


@pytest.mark.parametrize("seconds", ["³⁶⁰⁰", "٣٦٠٠", "9" * 5000])
def test_expiry_seconds_that_are_not_plain_digits_are_a_400(bare, seconds):
    answer = _post_form(bare, _multipart({"purpose": "batch", "expires_after[anchor]": "created_at",
                                          "expires_after[seconds]": seconds}, b"x"))
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "expires_after[seconds]"


def test_numbers_too_large_for_a_float_are_a_400(bare):
    training = processed(bare.client(), jsonl(chat_line(i) for i in range(12)))
    huge = 10**400  # json.dumps writes it digit for digit, as a hostile client would
    body = {"model": TINY, "training_file": training.id, "hyperparameters": {"n_epochs": huge}}
    answer = _raw(bare, "POST", "/v1/fine_tuning/jobs", json.dumps(body))
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "hyperparameters.n_epochs"
    for bias in ({"²": 1}, {"1": huge}):
        chat = {"model": TINY, "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}], "logit_bias": bias}
        answer = _raw(bare, "POST", "/v1/chat/completions", json.dumps(chat))
        assert answer.status_code == 400 and answer.json()["error"]["param"] == "logit_bias", answer.text


def test_a_seed_beyond_64_bits_is_a_400(bare):
    answer = _raw(bare, "POST", "/v1/completions",
                  json.dumps({"model": TINY, "prompt": "a", "max_tokens": 1, "seed": 2**64}))
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "seed"


def test_a_thousand_metadata_filters_are_a_400(bare):
    answer = _raw(bare, "GET", "/v1/fine_tuning/jobs", **{f"metadata[k{i}]": "v" for i in range(1200)})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "metadata"
    assert "Traceback" not in bare.log()


async def _slow_clients(port: int, seconds: float) -> dict:
    """Slow and silent clients, each a bounded loop, and ordinary requests beside them: how each slow one
    ended, and how long the ordinary ones took."""
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def slow(kind: str) -> tuple[str, float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            if kind == "head":
                writer.write(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            elif kind == "body":
                writer.write(b"POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer k\r\n"
                             b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n"
                             b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\n')
            for _ in range(int(seconds / 0.5)):  # a header line or a byte every half second, or nothing
                if kind != "idle":
                    writer.write(b"X-Slow: 1\r\n" if kind == "head" else b"x")
                try:
                    answer = await asyncio.wait_for(reader.read(4096), 0.5)
                except TimeoutError:
                    continue
                return (answer.split(b" ", 2)[1].decode() if answer else "closed"), loop.time() - started
            return "still open", loop.time() - started
        except (ConnectionError, OSError):
            return "closed", loop.time() - started
        finally:
            writer.close()

    async def ordinary() -> float:
        begun = loop.time()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(4096), 10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer
        return loop.time() - begun

    slow_ones = [asyncio.create_task(slow(kind)) for kind in ["head"] * 100 + ["idle"] * 50 + ["body"] * 30]
    await asyncio.sleep(0.5)
    ordinary_times = [await ordinary() for _ in range(30)]
    ends = await asyncio.gather(*slow_ones)
    return {"ends": ends, "ordinary": ordinary_times}


def test_slow_and_silent_clients_are_cut_off_and_others_served(start_server):
    limits = {"GXFT_HEAD_TIMEOUT_SECONDS": "2", "GXFT_BODY_IDLE_SECONDS": "2", "GXFT_BODY_GRACE_SECONDS": "2",
              "GXFT_BODY_MIN_RATE": "1024"}
    server = start_server(env=limits)
    result = asyncio.run(_slow_clients(server.port, seconds=12))
    outcomes = [outcome for outcome, _ in result["ends"]]
    assert "still open" not in outcomes
    assert set(outcomes) <= {"408", "closed"} and outcomes.count("408") >= 150, outcomes
    assert max(ended for _, ended in result["ends"]) < 8  # a 2 s limit, plus a 2 s grace for bodies, plus slack
    assert max(result["ordinary"]) < 2
    assert server.client().models.list().data


@pytest.mark.parametrize("suffix", ["a\nb", "a/b", "../x", "a\x00b", "abc\u202edcba", "a:b", "a b", "é", ""])
def test_a_suffix_outside_openais_characters_is_a_400(bare, suffix):
    training = processed(bare.client(), jsonl(chat_line(i) for i in range(12)))
    with pytest.raises(openai.BadRequestError) as refused:
        bare.client().fine_tuning.jobs.create(model=TINY, training_file=training.id, suffix=suffix)
    assert refused.value.param == "suffix"


def test_every_name_a_job_produces_routes(start_server):
    server = start_server(env={"GXFT_API_KEYS": "sk-dotted=team.a-1"}, worker=True)
    client = server.client("sk-dotted")
    training = processed(client, jsonl(chat_line(i) for i in range(12)))
    job = client.fine_tuning.jobs.create(model=TINY, training_file=training.id, suffix="v1.0-x_Y",
                                         hyperparameters={"n_epochs": 2})
    done = wait_done(client, job.id, patience=120)
    assert done.status == "succeeded" and done.fine_tuned_model.startswith("ft:gxft/tiny-chat:team.a-1:v1.0-x_Y:")
    names = [c.fine_tuned_model_checkpoint for c in client.fine_tuning.jobs.checkpoints.list(job.id)]
    for name in names:
        assert client.models.retrieve(name).id == name
        reply = client.chat.completions.create(model=name, max_tokens=1, messages=[{"role": "user", "content": "hi"}])
        assert reply.model == name
        assert client.post(f"/models/{name}/export", body={}, cast_to=httpx2.Response).status_code == 200
        assert client.models.delete(name).deleted


@pytest.mark.parametrize(("variable", "value", "words"), [
    ("GXFT_API_KEYS", "sk-x=team/a", "project name"),
    ("GXFT_MODELS_FILE", 'models = [{id = "bad:name", path = "x"}]', "model name"),
])
def test_names_that_would_not_route_stop_the_server_at_start(tmp_path, variable, value, words):
    env = {**os.environ, variable: value}
    if variable == "GXFT_MODELS_FILE":
        (tmp_path / "models.toml").write_text(value)
        env[variable] = str(tmp_path / "models.toml")
    started = subprocess.run([sys.executable, "-m", "gxft", "serve", "--data-dir", str(tmp_path / "data")],
                             env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode == 2 and words in started.stderr


@pytest.mark.parametrize(("variable", "value"), [
    ("GXFT_QUOTA_FILE_BYTES", "10GB"), ("GXFT_LEASE_SECONDS", "nan"), ("GXFT_ADAPTER_SLOTS", "0"),
])
def test_a_mistyped_number_stops_the_server_with_its_name(tmp_path, variable, value):
    started = subprocess.run([sys.executable, "-m", "gxft", "serve", "--data-dir", str(tmp_path / "data")],
                             env={**os.environ, variable: value}, capture_output=True, text=True, timeout=60)
    assert started.returncode == 2 and f"{variable} must be" in started.stderr and "Traceback" not in started.stderr


def _get(server: ServerProcess, path: str, host: str) -> httpx2.Response:
    return httpx2.get(server.base_url + path, headers={"Host": host, "Authorization": "Bearer sk-any"}, timeout=30)


def test_an_open_server_answers_only_its_own_names(start_server):
    server = start_server(env={"GXFT_PUBLIC_HOSTS": "gxft.example"})
    for host in ("evil.example", "evil.example:8000", "10.1.2.3", "127.0.0.1.evil.example"):
        for path in ("/v1/models", "/", "/dashboard/app.js", "/healthz"):
            answer = _get(server, path, host)
            assert answer.status_code == 403 and answer.json()["error"]["code"] == "host_not_allowed", (host, path)
    for host in (f"127.0.0.1:{server.port}", "localhost", "[::1]:8000", "gxft.example", "GXFT.example:443"):
        assert _get(server, "/v1/models", host).status_code == 200, host
    assert "GXFT_API_KEYS is not set: this server is open" in server.log()


def test_a_keyed_server_takes_any_host(start_server):
    server = start_server(env={"GXFT_API_KEYS": "sk-keyed=team"})
    answer = httpx2.get(server.base_url + "/v1/models", headers={"Host": "gxft.internal", "Authorization":
                                                                 "Bearer sk-keyed"})
    assert answer.status_code == 200 and "this server is open" not in server.log()


def test_the_data_dir_is_the_owners_alone(start_server):
    server = start_server()
    server.client().files.create(file=("private.bin", b"secret"), purpose="user_data")
    assert (server.data_dir.stat().st_mode & 0o777) == 0o700
    for path in [server.data_dir / "worker_token", server.data_dir / "gxft.sqlite3",
                 *(p for p in (server.data_dir / "blobs").iterdir() if p.is_file())]:
        assert (path.stat().st_mode & 0o077) == 0, f"{path.name} is readable by others"


def test_the_dashboard_forbids_framing_and_foreign_scripts(bare):
    for path in ("/", "/dashboard/app.js", "/dashboard/style.css"):
        headers = httpx2.get(bare.base_url + path).headers
        policy = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy, path
        assert headers["x-frame-options"] == "DENY"


def test_per_project_quotas_answer_429(start_server):
    server = start_server(env={"GXFT_QUOTA_FILE_BYTES": "20000", "GXFT_QUOTA_ACTIVE_JOBS": "2"})
    client = server.client()
    client.files.create(file=("a.bin", b"x" * 15_000), purpose="user_data")
    files_before = {f.id for f in client.files.list()}
    with pytest.raises(openai.RateLimitError) as refused:
        client.files.create(file=("b.bin", b"x" * 6_000), purpose="user_data")
    assert refused.value.code == "insufficient_quota" and refused.value.status_code == 429
    assert {f.id for f in client.files.list()} == files_before and _stored(server)[1] == []
    training = processed(client, jsonl(chat_line(i) for i in range(12)))
    for _ in range(2):  # no worker on this server: the jobs stay queued
        client.fine_tuning.jobs.create(model=TINY, training_file=training.id)
    with pytest.raises(openai.RateLimitError) as refused:
        client.fine_tuning.jobs.create(model=TINY, training_file=training.id)
    assert refused.value.code == "insufficient_quota"


def test_a_worker_reads_and_reports_only_on_the_job_it_holds(bare):
    client = bare.client()
    holder, other = Worker(bare), Worker(bare)
    job_id = _claimed_job(bare, holder)
    job = client.fine_tuning.jobs.retrieve(job_id)
    stranger = client.files.create(file=("private.bin", b"another job's secret"), purpose="user_data")
    assert holder.http.get(f"/internal/jobs/{job_id}/files/{job.training_file}").status_code == 200
    assert holder.http.get(f"/internal/jobs/{job_id}/files/{stranger.id}").status_code == 404
    for path in (f"/internal/jobs/{job_id}/files/{job.training_file}", f"/internal/jobs/{job_id}/report"):
        answer = other.http.get(path) if "files" in path else other.post(path, {"trained_steps": 1})
        assert answer.status_code == 409, path  # the job is not the other worker's
    assert other.complete(job_id).status_code == 409
    assert client.fine_tuning.jobs.retrieve(job_id).status == "running"


@pytest.mark.parametrize(("report", "status"), [
    ({"trained_steps": -1}, 400),
    ({"trained_steps": 5, "total_steps": 4}, 400),
    ({"events": [{"created_at": 0, "message": "from 1970"}]}, 400),
    ({"events": [{"created_at": 2_000_000_000, "message": "x" * 100_000}]}, 400),
    ({"events": [{"created_at": 2_000_000_000, "message": "x", "type": "metrics", "data": {"step": -3}}]}, 400),
    ({"events": [{"created_at": 2_000_000_000, "message": "x"}] * 1001}, 400),
])
def test_impossible_reports_are_refused(bare, report, status):
    worker = Worker(bare)
    job_id = _claimed_job(bare, worker)
    for event in report.get("events", []):
        if event["created_at"] == 2_000_000_000:
            event["created_at"] = int(time.time())
    assert worker.report(job_id, **report).status_code == status
    job = bare.client().fine_tuning.jobs.retrieve(job_id)
    assert job.model_extra["trained_steps"] == 0
    assert "from 1970" not in [e.message for e in all_events(bare.client(), job_id)]


def test_a_workers_upload_is_capped(start_server):
    server = start_server(env={"GXFT_WORKER_TOKEN": WORKER_TOKEN, "GXFT_MAX_RESULT_FILE_BYTES": "1000000"})
    worker = Worker(server)
    job_id = _claimed_job(server, worker)
    answer = worker.http.post(f"/internal/jobs/{job_id}/files", content=b"x" * 2_000_000)
    assert answer.status_code == 413
    assert not any(p.name.startswith("staged-") for p in (server.data_dir / "blobs").iterdir())
    assert worker.http.post(f"/internal/jobs/{job_id}/files", content=b"x" * 1000).status_code == 200


def test_only_a_registered_worker_is_believed_to_have_a_gpu(bare):
    fake = httpx2.post(bare.base_url + "/internal/workers/heartbeat", json={"accelerator": "cuda"},
                       headers={"Authorization": f"Bearer {WORKER_TOKEN}"})
    assert fake.status_code == 401  # the token registers a worker; it is no worker's key
    training = processed(bare.client(), jsonl(chat_line(i) for i in range(12)))
    with pytest.raises(openai.BadRequestError) as refused:
        bare.client().fine_tuning.jobs.create(model=TINY, training_file=training.id,
                                              hyperparameters={"quantization": "nf4"})
    assert refused.value.code == "gpu_required"


def test_a_job_error_never_quotes_the_internal_api(bare):
    worker = Worker(bare)
    job_id = _claimed_job(bare, worker)
    leak = f"ConnectError: could not reach {bare.base_url}/internal/jobs/{job_id}/report and '/internal/x'"
    assert worker.fail(job_id, message=leak).status_code == 200
    job = bare.client().fine_tuning.jobs.retrieve(job_id)
    assert job.status == "failed" and "/internal/" not in job.error.message
    assert "/internal/" not in " ".join(e.message for e in all_events(bare.client(), job_id))
