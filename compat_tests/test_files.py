"""The Files API through the strict official client (and curl) against a real server."""

import json
import os
import subprocess
import threading
import time

import openai
import psutil
import pytest

from compat_tests.conftest import SAMPLE_DATA


def chat_line(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"Question {i}?"},
                         {"role": "assistant", "content": f"Answer {i}."}]}


def jsonl(rows) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def upload(client, content: bytes, name: str = "train.jsonl", purpose: str = "fine-tune"):
    return client.files.create(file=(name, content), purpose=purpose)


def processed(client, content: bytes, name: str = "train.jsonl"):
    return client.files.wait_for_processing(upload(client, content, name).id, poll_interval=0.05, max_wait_seconds=30)


def test_upload_sample_file_is_processed(client):
    with open(SAMPLE_DATA / "sample_training_data.jsonl", "rb") as handle:
        created = client.files.create(file=handle, purpose="fine-tune")
    assert created.id.startswith("file-")
    assert created.filename == "sample_training_data.jsonl"
    assert created.bytes == (SAMPLE_DATA / "sample_training_data.jsonl").stat().st_size
    assert created.status in ("uploaded", "processed")
    assert created.expires_at is None
    done = client.files.wait_for_processing(created.id, poll_interval=0.05, max_wait_seconds=30)
    assert done.status == "processed"
    assert done.status_details is None
    assert client.files.retrieve(created.id).status == "processed"


def test_content_round_trip_is_byte_exact(client):
    payload = os.urandom(3 * 1024 * 1024 + 17)
    created = upload(client, payload, name="blob.bin", purpose="user_data")
    assert created.bytes == len(payload)
    assert created.status == "processed"
    assert client.files.content(created.id).read() == payload


def test_list_paginates_across_pages_with_after(start_server):
    client = start_server().client()
    ids = [upload(client, b"x" * (i + 1), name=f"page-{i}.bin", purpose="batch").id for i in range(7)]
    assert [f.id for f in client.files.list(limit=3)] == ids[::-1]
    first_page = client.files.list(limit=3)
    assert [f.id for f in first_page.data] == ids[6:3:-1] and first_page.has_more
    assert first_page.first_id == ids[6] and first_page.last_id == ids[4]
    second_page = client.files.list(limit=3, after=ids[4])
    assert [f.id for f in second_page.data] == ids[3:0:-1] and second_page.has_more
    last_page = client.files.list(limit=3, after=ids[1])
    assert [f.id for f in last_page.data] == [ids[0]] and not last_page.has_more
    assert [f.id for f in client.files.list(limit=2, order="asc")] == ids
    assert [f.id for f in client.files.list(limit=3, order="asc", after=ids[2]).data] == ids[3:6]


def test_list_filters_by_purpose(client):
    tuned = upload(client, jsonl(chat_line(i) for i in range(10)))
    other = upload(client, b"abc", name="a.bin", purpose="user_data")
    tune_ids = {f.id for f in client.files.list(purpose="fine-tune")}
    assert tuned.id in tune_ids and other.id not in tune_ids


def test_delete_then_404(client):
    created = upload(client, b"bye", name="bye.bin", purpose="user_data")
    deleted = client.files.delete(created.id)
    assert deleted.id == created.id and deleted.deleted is True and deleted.object == "file"
    with pytest.raises(openai.NotFoundError) as retrieve_error:
        client.files.retrieve(created.id)
    assert retrieve_error.value.body["message"] == f"No such File object: {created.id}"
    with pytest.raises(openai.NotFoundError):
        client.files.content(created.id)
    with pytest.raises(openai.NotFoundError):
        client.files.delete(created.id)
    assert created.id not in {f.id for f in client.files.list(purpose="user_data")}


def test_cursor_after_a_deleted_file_still_works(client):
    ids = [upload(client, b"z", name=f"c{i}.bin", purpose="vision").id for i in range(3)]
    client.files.delete(ids[1])
    rest = client.files.list(purpose="vision", after=ids[1], limit=10)
    assert ids[0] in [f.id for f in rest.data]


def test_unknown_cursor_and_bad_limit_are_400(client):
    with pytest.raises(openai.BadRequestError) as error:
        client.files.list(after="file-doesnotexist")
    assert error.value.param == "after"
    with pytest.raises(openai.BadRequestError) as error:
        client.files.list(limit=0)
    assert error.value.param == "limit"


@pytest.mark.parametrize(
    "rows_or_bytes, expected",
    [
        (b'{"messages": [\n' + jsonl(chat_line(i) for i in range(10)), "line 1: not valid JSON"),
        (jsonl([chat_line(0), {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant"}]},
                *[chat_line(i) for i in range(10)]]),
         'line 2: messages[1] has no "content"'),
        (jsonl([{"messages": [{"role": "user", "content": "hi"}]}, *[chat_line(i) for i in range(10)]]),
         'line 1: "messages" has no assistant message'),
        (jsonl([{"messages": [{"role": "assistant", "content": "hi"}]}, *[chat_line(i) for i in range(10)]]),
         'line 1: "messages" has no user message'),
        (jsonl([*[chat_line(i) for i in range(10)], {"messages": [{"role": "robot", "content": "x"}]}]),
         "line 11: messages[0] has unknown role 'robot'"),
        (jsonl([*[chat_line(i) for i in range(10)], {"messages": [{"content": "x"}]}]),
         'line 11: messages[0] has no "role"'),
        (jsonl([*[chat_line(i) for i in range(3)], {"message": []}, *[chat_line(i) for i in range(8)]]),
         "line 4: unrecognised example"),
        (jsonl([*[chat_line(i) for i in range(10)], [1, 2]]), "line 11: expected a JSON object"),
        (jsonl([*[chat_line(i) for i in range(10)], {"messages": "hello"}]), 'line 11: "messages" must be a list'),
        (jsonl(chat_line(i) for i in range(10)) + b'{"text": "caf\xe9"}\n', "line 11: not valid UTF-8"),
        (jsonl([*[chat_line(i) for i in range(10)], {"prompt": "p", "completion": "c"}]),
         "line 11: example is in the prompt/completion format, but the file is in the chat format (line 1)"),
        (b"", "the file is empty"),
        (b"\n\n", "the file is empty"),
        (jsonl([*[chat_line(i) for i in range(10)],
                {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 2}]}]),
         "line 11: messages[1].weight must be 0 or 1"),
        (jsonl([*[chat_line(i) for i in range(10)],
                {"messages": [{"role": "user", "content": "q", "weight": 0}, {"role": "assistant", "content": "a"}]}]),
         'line 11: messages[0] has a "weight" but only assistant messages can carry one'),
    ],
)
def test_validation_rules_report_line_numbers(client, rows_or_bytes, expected):
    done = processed(client, rows_or_bytes)
    assert done.status == "error"
    assert expected in done.status_details


def test_small_file_is_processed_with_a_note(client):
    done = processed(client, jsonl(chat_line(i) for i in range(7)))
    assert done.status == "processed"
    assert done.status_details == "the file has 7 example(s), but a training file must have at least 10"
    assert processed(client, (SAMPLE_DATA / "sample_validation_data.jsonl").read_bytes()).status == "processed"


def test_validation_reports_several_problems(client):
    done = processed(client, (SAMPLE_DATA / "invalid" / "bad_lines.jsonl").read_bytes())
    assert done.status == "error"
    assert done.status_details.startswith("line 3: not valid JSON")
    assert 'line 7: messages[1] has no "content"' in done.status_details


@pytest.mark.parametrize(
    "row",
    [
        chat_line(0),
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather?"},
                      {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                       "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}}]},
                      {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                      {"role": "assistant", "content": "Sunny.", "weight": 1}],
         "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]},
        {"prompt": "2+2=", "completion": "4"},
        {"text": "Some plain text for continued pre-training."},
        {"instruction": "Translate to French", "input": "cat", "output": "chat"},
        {"input": {"messages": [{"role": "user", "content": "Hi"}]},
         "preferred_output": [{"role": "assistant", "content": "Hello!"}],
         "non_preferred_output": [{"role": "assistant", "content": "Go away."}]},
    ],
    ids=["chat", "chat-tools", "prompt-completion", "text", "alpaca", "preference"],
)
def test_every_format_is_accepted(client, row):
    assert processed(client, jsonl([row] * 10)).status == "processed"


def test_fine_tune_upload_must_be_jsonl(client):
    with pytest.raises(openai.BadRequestError) as error:
        upload(client, jsonl(chat_line(i) for i in range(10)), name="train.csv")
    assert "JSONL" in error.value.message and error.value.param == "file"


def test_missing_fields_and_bad_purpose(server, client):
    with pytest.raises(openai.BadRequestError) as error:
        upload(client, b"x", name="x.bin", purpose="training")
    assert error.value.param == "purpose"
    import httpx2

    headers = {"Authorization": "Bearer k"}
    response = httpx2.post(server.base_url + "/v1/files", headers=headers, files={"file": ("a.jsonl", b"{}")})
    assert response.status_code == 400 and response.json()["error"]["param"] == "purpose"
    response = httpx2.post(server.base_url + "/v1/files", headers=headers, data={"purpose": "fine-tune"},
                           files={"other": ("a.txt", b"x")})
    assert response.status_code == 400 and response.json()["error"]["param"] == "file"
    response = httpx2.post(server.base_url + "/v1/files", headers=headers, content=b"{}",
                           )
    assert response.status_code == 400 and "multipart/form-data" in response.json()["error"]["message"]
    assert response.headers["x-request-id"].startswith("req_")


def test_expires_after(client):
    created = client.files.create(
        file=("e.bin", b"e"), purpose="batch", expires_after={"anchor": "created_at", "seconds": 3600}
    )
    assert created.expires_at == created.created_at + 3600
    with pytest.raises(openai.BadRequestError) as error:
        client.files.create(file=("e.bin", b"e"), purpose="batch", expires_after={"anchor": "created_at", "seconds": 5})
    assert error.value.param == "expires_after[seconds]"


def test_curl_upload_and_download(server, tmp_path):
    source = SAMPLE_DATA / "sample_validation_data.jsonl"
    out = subprocess.run(
        ["curl", "-sS", "-H", "Authorization: Bearer anything", "-F", "purpose=fine-tune",
         "-F", f"file=@{source}", server.base_url + "/v1/files"],
        capture_output=True, check=True,
    )
    created = json.loads(out.stdout)
    assert created["filename"] == "sample_validation_data.jsonl" and created["bytes"] == source.stat().st_size
    target = tmp_path / "copy.jsonl"
    subprocess.run(
        ["curl", "-sS", "-H", "Authorization: Bearer anything", "-H", "Accept: application/binary",
         "-o", str(target), f"{server.base_url}/v1/files/{created['id']}/content"],
        check=True,
    )
    assert target.read_bytes() == source.read_bytes()


def test_empty_json_body_on_delete_is_accepted(server, client):
    import httpx2

    created = upload(client, b"d", name="d.bin", purpose="user_data")
    response = httpx2.delete(
        f"{server.base_url}/v1/files/{created.id}",
        headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
    )
    assert response.status_code == 200 and response.json() == {"id": created.id, "object": "file", "deleted": True}


def test_api_keys_and_project_isolation(start_server):
    server = start_server(env={"GXFT_API_KEYS": "key-a=alpha,key-b=beta,key-c"})
    alpha, beta = server.client("key-a"), server.client("key-b")
    with pytest.raises(openai.AuthenticationError) as error:
        server.client("wrong").files.list()
    assert error.value.code == "invalid_api_key"
    mine = upload(alpha, b"secret", name="s.bin", purpose="user_data")
    assert alpha.files.retrieve(mine.id).id == mine.id
    assert mine.id not in {f.id for f in beta.files.list()}
    assert mine.id not in {f.id for f in server.client("key-c").files.list()}
    for attempt in (beta.files.retrieve, beta.files.content, beta.files.delete):
        with pytest.raises(openai.NotFoundError):
            attempt(mine.id)
    assert alpha.files.content(mine.id).read() == b"secret"


def test_oversized_upload_is_413_with_flat_memory(start_server, tmp_path):
    server = start_server()
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as handle:
        handle.truncate(600 * 1024 * 1024)
    server_process = psutil.Process(server.process.pid)
    peak = {"rss": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak["rss"] = max(peak["rss"], server_process.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        out = subprocess.run(
            ["curl", "-sS", "-H", "Authorization: Bearer k", "-F", "purpose=fine-tune", "-F", f"file=@{big}",
             "-w", "\n%{http_code}", server.base_url + "/v1/files"],
            capture_output=True, check=True, timeout=300,
        )
    finally:
        done.set()
        sampler.join()
    body, status = out.stdout.decode().rsplit("\n", 1)
    assert status == "413"
    assert json.loads(body)["error"]["code"] == "file_too_large"
    assert peak["rss"] < 300 * 1024 * 1024, f"server peak RSS {peak['rss'] / 2**20:.0f} MiB"
    blobs = server.data_dir / "blobs"
    assert list((blobs / "tmp").iterdir()) == []
    assert [p for p in blobs.iterdir() if p.is_file()] == []
    assert server.client().files.list().data == []
