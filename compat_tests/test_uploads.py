"""The Uploads API (a file sent in parts) through the strict official client and raw HTTP, against a real
server: the SDK's own chunked upload, parallel parts out of order, every refusal, and nothing left on disk
of an upload that was cancelled or expired. A server killed mid-upload is in test_faults.py."""

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx2
import openai
import pytest

from compat_tests.conftest import SAMPLE_DATA
from compat_tests.test_files import chat_line, jsonl

MIB = 1024 * 1024


def part_blobs(server, part_ids: list[str]) -> list[str]:
    """Those of the parts whose bytes are still on the server's disk."""
    return [part_id for part_id in part_ids if (server.data_dir / "blobs" / part_id).exists()]


def add_part(server, upload_id: str, data: bytes) -> httpx2.Response:
    return httpx2.post(f"{server.base_url}/v1/uploads/{upload_id}/parts", files={"data": ("blob", data)},
                       headers={"Authorization": "Bearer k"}, timeout=60)


def test_sdk_chunked_upload_becomes_an_ordinary_validated_file(server, client, tmp_path):
    source = SAMPLE_DATA / "sample_training_data.jsonl"
    content = source.read_bytes()
    upload = client.uploads.upload_file_chunked(file=source, mime_type="text/jsonl", purpose="fine-tune",
                                                part_size=400, md5=hashlib.md5(content).hexdigest())
    assert upload.status == "completed" and upload.object == "upload"
    assert (upload.filename, upload.bytes, upload.purpose) == ("sample_training_data.jsonl", len(content), "fine-tune")
    assert upload.expires_at - upload.created_at == 3600
    assert upload.file is not None and upload.file.bytes == len(content)
    done = client.files.wait_for_processing(upload.file.id, poll_interval=0.05, max_wait_seconds=30)
    assert done.status == "processed" and done.filename == "sample_training_data.jsonl"
    assert client.files.content(done.id).read() == content

    # It is validated as any upload is: a bad line is an error with its number.
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(jsonl(chat_line(i) for i in range(12)) + b"{not json\n")
    broken = client.uploads.upload_file_chunked(file=bad, mime_type="text/jsonl", purpose="fine-tune", part_size=256)
    assert broken.file is not None
    failed = client.files.wait_for_processing(broken.file.id, poll_interval=0.05, max_wait_seconds=30)
    assert failed.status == "error" and "line 13" in (failed.status_details or "").lower()


def test_parts_sent_in_parallel_and_out_of_order_join_in_the_order_listed(server, client):
    chunks = [os.urandom(MIB + i) for i in range(8)]
    content = b"".join(chunks)
    upload = client.uploads.create(bytes=len(content), filename="blob.bin", mime_type="application/octet-stream",
                                   purpose="user_data", expires_after={"anchor": "created_at", "seconds": 7200})
    assert upload.status == "pending" and upload.file is None
    with ThreadPoolExecutor(8) as pool:  # all at once, the last chunk first
        answers = list(pool.map(lambda data: add_part(server, upload.id, data), chunks[::-1]))
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    part_ids = [a.json()["id"] for a in answers][::-1]  # back in the file's order
    assert all(a.json()["object"] == "upload.part" and a.json()["upload_id"] == upload.id for a in answers)

    refusals = {
        "md5": ({"part_ids": part_ids, "md5": hashlib.md5(b"other").hexdigest()}, "md5_mismatch"),
        "a part left out": ({"part_ids": part_ids[:-1]}, "upload_size_mismatch"),
        "a part twice": ({"part_ids": [*part_ids, part_ids[0]]}, None),
        "a part of no upload": ({"part_ids": [*part_ids[:-1], "part_nothing"]}, None),
    }
    for case, (body, code) in refusals.items():
        with pytest.raises(openai.BadRequestError) as refused:
            client.uploads.complete(upload_id=upload.id, **body)
        assert refused.value.code == code, case
    assert part_blobs(server, part_ids) == part_ids  # a refused completion keeps every part

    done = client.uploads.complete(upload_id=upload.id, part_ids=part_ids, md5=hashlib.md5(content).hexdigest())
    assert done.status == "completed" and done.file is not None and done.file.status == "processed"
    assert done.file.expires_at == done.file.created_at + 7200  # `expires_after` is the file's
    assert client.files.content(done.file.id).read() == content
    assert part_blobs(server, part_ids) == []
    for again in (lambda: client.uploads.complete(upload_id=upload.id, part_ids=part_ids),
                  lambda: client.uploads.cancel(upload_id=upload.id),
                  lambda: client.uploads.parts.create(upload_id=upload.id, data=b"more")):
        with pytest.raises(openai.BadRequestError) as ended:
            again()
        assert ended.value.code == "upload_not_pending" and "is completed" in ended.value.message


def test_refusals_name_what_is_wrong(server, client):
    too_big = client.uploads.create(bytes=MIB, filename="big.bin", mime_type="application/octet-stream",
                                    purpose="user_data")
    answer = add_part(server, too_big.id, b"x" * (64 * MIB + 1))
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "file_too_large"
    cases = {
        "more than 8 GiB": dict(bytes=8 * 1024**3 + 1, filename="huge.bin", purpose="user_data"),
        "a fine-tuning file that is not .jsonl": dict(bytes=10, filename="train.txt", purpose="fine-tune"),
        "a purpose of none": dict(bytes=10, filename="x.jsonl", purpose="nothing"),
    }
    for case, fields in cases.items():
        with pytest.raises(openai.BadRequestError) as refused:
            client.uploads.create(mime_type="text/jsonl", **fields)  # type: ignore[arg-type]
        assert refused.value.param in ("bytes", "filename", "purpose"), case
    with pytest.raises(openai.NotFoundError):
        client.uploads.parts.create(upload_id="upload_nothing", data=b"x")
    assert client.uploads.cancel(upload_id=too_big.id).status == "cancelled"


def test_cancelled_and_expired_uploads_leave_nothing_on_disk(start_server):
    server = start_server(env={"GXFT_UPLOAD_EXPIRY_SECONDS": "2", "GXFT_LEASE_SECONDS": "2"})
    client = server.client()

    cancelled = client.uploads.create(bytes=20, filename="c.bin", mime_type="application/octet-stream",
                                      purpose="user_data")
    cancelled_parts = [client.uploads.parts.create(upload_id=cancelled.id, data=b"0123456789").id for _ in range(2)]
    assert part_blobs(server, cancelled_parts) == cancelled_parts
    assert client.uploads.cancel(upload_id=cancelled.id).status == "cancelled"
    assert part_blobs(server, cancelled_parts) == []

    expiring = client.uploads.create(bytes=20, filename="e.bin", mime_type="application/octet-stream",
                                     purpose="user_data")
    expiring_parts = [client.uploads.parts.create(upload_id=expiring.id, data=b"0123456789").id for _ in range(2)]
    deadline = time.monotonic() + 15
    while part_blobs(server, expiring_parts) and time.monotonic() < deadline:  # the sweep, not a request
        time.sleep(0.1)
    assert part_blobs(server, expiring_parts) == []
    with pytest.raises(openai.BadRequestError) as expired:
        client.uploads.complete(upload_id=expiring.id, part_ids=expiring_parts)
    assert "is expired" in expired.value.message
    assert list((server.data_dir / "blobs" / "tmp").iterdir()) == []
    assert [f for f in client.files.list()] == []
