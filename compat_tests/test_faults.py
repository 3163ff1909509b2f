"""Faults done to real processes: killed workers and servers, a full disk, a broken base model.
Each time the service must keep serving, lose nothing that was stored, and finish or fail the job clearly."""

import hashlib
import os
import subprocess
import threading
import time

import httpx2
import openai
import pytest

from compat_tests.conftest import SAMPLE_DATA, unavailable
from compat_tests.server_process import ServerProcess, start_worker
from compat_tests.test_files import chat_line, jsonl, processed, upload
from compat_tests.test_fine_tuning import TINY, TINY_PATH, all_events, metrics_events, wait_done, wait_for_job


def _digest(client, file_id: str) -> str:
    return hashlib.sha256(client.files.content(file_id).read()).hexdigest()


def _scratch_and_temp(data_dir) -> list[str]:
    """Blobs that are not (yet) files: uploads in progress, parts of uploads and staged checkpoint parts."""
    blobs = data_dir / "blobs"
    return sorted([p.name for p in (blobs / "tmp").iterdir()]
                  + [p.name for p in blobs.iterdir() if p.name.startswith(("staged-", "state-", "part_"))])


def test_worker_killed_mid_training_is_resumed_by_another_with_the_same_steps(start_server, tmp_path):
    server = start_server(env={"GXFT_LEASE_SECONDS": "2"}, worker=False)
    client = server.client()
    train = processed(client, (SAMPLE_DATA / "sample_training_data.jsonl").read_bytes())
    first = start_worker(server, tmp_path / "worker-1.log")
    try:
        job = client.fine_tuning.jobs.create(model=TINY, training_file=train.id, hyperparameters={"n_epochs": 40})
        wait_for_job(client, job.id, lambda _: len(client.fine_tuning.jobs.checkpoints.list(job.id).data) >= 1,
                     patience=60)
        first.kill()
        first.wait()
        killed_at = client.fine_tuning.jobs.retrieve(job.id).model_extra["trained_steps"]
        second = start_worker(server, tmp_path / "worker-2.log")
        try:
            done = wait_done(client, job.id, patience=120)
        finally:
            second.terminate()
            second.wait()
    finally:
        if first.poll() is None:
            first.kill()
    assert done.status == "succeeded", done.error
    assert done.model_extra["trained_steps"] == done.model_extra["total_steps"] == 400
    messages = [e.message for e in all_events(client, job.id)]
    assert any(m.startswith("The worker running this job stopped reporting") for m in messages)
    resumed = [m for m in messages if m.startswith("Fine-tuning job resumed from step")]
    assert resumed and int(resumed[0].rsplit(" ", 1)[1]) <= killed_at
    assert {e.data["step"] for e in metrics_events(client, job.id)} == set(range(1, 401))
    # One checkpoint per epoch, the last three kept.
    assert [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id)] == [400, 390, 380]
    assert _scratch_and_temp(server.data_dir) == []


class SlowUpload(threading.Thread):
    """A multipart upload that trickles in, so the server can be killed while it is half received: a file, or
    with `upload_id` a part of that upload."""

    def __init__(self, server: ServerProcess, upload_id: str | None = None):
        super().__init__(daemon=True)
        self.server = server
        self.path = f"/v1/uploads/{upload_id}/parts" if upload_id else "/v1/files"
        self.started_sending = threading.Event()
        self.outcome: object = None

    def body(self):
        if self.path == "/v1/files":
            yield b"--b\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nuser_data\r\n"
        yield (b"--b\r\nContent-Disposition: form-data; name=\"" + (b"file" if self.path == "/v1/files" else b"data")
               + b"\"; filename=\"half.bin\"\r\n\r\n")
        for _ in range(2000):
            yield b"x" * 65536
            self.started_sending.set()
            time.sleep(0.01)
        yield b"\r\n--b--\r\n"

    def run(self) -> None:
        try:
            self.outcome = httpx2.post(self.server.base_url + self.path, content=self.body(), timeout=120,
                                       headers={"Authorization": "Bearer k",
                                                "Content-Type": "multipart/form-data; boundary=b"})
        except httpx2.HTTPError as exc:
            self.outcome = exc


def test_server_killed_mid_upload_and_mid_training_loses_nothing(tmp_path):
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, worker=False)
    worker = start_worker(server, tmp_path / "worker.log")
    try:
        client = server.client()
        kept = upload(client, os.urandom(300_000), name="kept.bin", purpose="user_data")
        train = processed(client, jsonl(chat_line(i) for i in range(150)))
        job = client.fine_tuning.jobs.create(
            model=TINY, training_file=train.id, hyperparameters={"n_epochs": 3, "batch_size": 1}
        )
        wait_for_job(client, job.id, lambda _: len(client.fine_tuning.jobs.checkpoints.list(job.id).data) >= 1,
                     patience=120)
        parts = [os.urandom(100_000 + i) for i in range(3)]
        in_parts = client.uploads.create(bytes=sum(map(len, parts)), filename="parts.bin", purpose="user_data",
                                         mime_type="application/octet-stream")
        part_ids = [client.uploads.parts.create(upload_id=in_parts.id, data=data).id for data in parts[:2]]
        slow, slow_part = SlowUpload(server), SlowUpload(server, in_parts.id)
        for thread in (slow, slow_part):
            thread.start()
            thread.started_sending.wait(30)
        time.sleep(0.5)
        files = {f.id: (f.filename, f.bytes, _digest(client, f.id)) for f in client.files.list()}
        events = [(e.id, e.message) for e in all_events(client, job.id)]
        checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
        assert client.fine_tuning.jobs.retrieve(job.id).status == "running"

        server.kill()
        for thread in (slow, slow_part):
            thread.join(30)
            assert isinstance(thread.outcome, httpx2.HTTPError), thread.outcome  # the upload never completed
        server = ServerProcess(data_dir, worker=False, port=server.port)
        client = server.client()

        # The upload in parts keeps the two parts it had; the one cut short is gone.
        part_ids.append(client.uploads.parts.create(upload_id=in_parts.id, data=parts[2]).id)
        joined = client.uploads.complete(upload_id=in_parts.id, part_ids=part_ids)
        assert joined.file is not None and client.files.content(joined.file.id).read() == b"".join(parts)
        files[joined.file.id] = ("parts.bin", joined.file.bytes, _digest(client, joined.file.id))

        after = {f.id: f for f in client.files.list()}
        assert "half.bin" not in {f.filename for f in after.values()}
        for file_id, (filename, size, digest) in files.items():
            assert (after[file_id].filename, after[file_id].bytes, _digest(client, file_id)) == (filename, size, digest)
        assert all(f.purpose == "fine-tune-results" for file_id, f in after.items() if file_id not in files)
        assert list((data_dir / "blobs" / "tmp").iterdir()) == []
        now = {e.id: e.message for e in all_events(client, job.id)}
        assert all(now.get(event_id) == message for event_id, message in events)
        listed = {c.id: c for c in client.fine_tuning.jobs.checkpoints.list(job.id)}
        for checkpoint in checkpoints:
            assert listed[checkpoint.id].model_extra["result_files"] == checkpoint.model_extra["result_files"]
            for file_id in checkpoint.model_extra["result_files"]:
                assert _digest(client, file_id) == files[file_id][2]

        # The worker rode out the restart: the job goes on where it was, without being queued again.
        done = wait_done(client, job.id, patience=180)
        assert done.status == "succeeded", done.error
        assert done.model_extra["trained_steps"] == done.model_extra["total_steps"] == 450
        assert {e.data["step"] for e in metrics_events(client, job.id)} == set(range(1, 451))
        assert not any("stopped reporting" in e.message for e in all_events(client, job.id))
        assert client.files.retrieve(kept.id).bytes == 300_000
        assert _scratch_and_temp(data_dir) == []
    finally:
        worker.terminate()
        worker.wait()
        server.stop()


@pytest.fixture
def small_disk(tmp_path):
    """A 48 MiB tmpfs: the data dir of a server whose disk the test fills."""
    if os.geteuid() != 0:
        unavailable("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(mount, leave_bytes: int):
    """Leave about `leave_bytes` free on the mount."""
    filler = mount / "filler"
    free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
    with open(filler, "ab") as handle:
        os.posix_fallocate(handle.fileno(), 0, filler.stat().st_size + free - leave_bytes)
    return filler


def test_full_disk_refuses_an_upload_with_507_and_keeps_serving(small_disk):
    server = ServerProcess(small_disk, worker=False)
    try:
        client = server.client()
        before = upload(client, b"small and fine", name="before.bin", purpose="user_data")
        filler = _fill(small_disk, 1024 * 1024)
        with pytest.raises(openai.APIStatusError) as error:
            upload(client, os.urandom(4 * 1024 * 1024), name="big.bin", purpose="user_data")
        assert error.value.status_code == 507 and error.value.code == "insufficient_storage"
        assert [f.id for f in client.files.list()] == [before.id]
        assert _scratch_and_temp(small_disk) == []
        assert client.files.content(before.id).read() == b"small and fine"
        filler.unlink()
        again = upload(client, os.urandom(4 * 1024 * 1024), name="big.bin", purpose="user_data")
        assert client.files.retrieve(again.id).bytes == 4 * 1024 * 1024
    finally:
        server.stop()


def test_full_disk_while_checkpointing_fails_the_job_and_leaves_nothing_partial(small_disk):
    server = ServerProcess(small_disk, worker=True)
    try:
        client = server.client()
        train = processed(client, jsonl(chat_line(i) for i in range(12)))
        # Full weights are about 4 MiB: the checkpoint cannot fit, the job's events still can.
        filler = _fill(small_disk, 1536 * 1024)
        job = client.fine_tuning.jobs.create(model=TINY, training_file=train.id,
                                             hyperparameters={"n_epochs": 1, "lora": False})
        done = wait_done(client, job.id, patience=120)
        assert done.status == "failed"
        assert done.error.code == "insufficient_storage" and "disk space" in done.error.message
        assert client.fine_tuning.jobs.checkpoints.list(job.id).data == []
        assert [f.purpose for f in client.files.list()] == ["fine-tune"]
        assert _scratch_and_temp(small_disk) == []
        filler.unlink()
        retry = client.fine_tuning.jobs.create(model=TINY, training_file=train.id, hyperparameters={"n_epochs": 1})
        assert wait_done(client, retry.id, patience=120).status == "succeeded"
    finally:
        server.stop()


def test_corrupt_or_missing_base_model_fails_its_job_by_name_and_others_go_on(start_server, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{ this is not json")
    registry = tmp_path / "registry.toml"
    registry.write_text(
        f'[[models]]\nid = "broken/model"\npath = "{broken}"\n\n'
        f'[[models]]\nid = "missing/model"\npath = "{tmp_path / "no-such-folder"}"\n\n'
        f'[[models]]\nid = "{TINY}"\npath = "{TINY_PATH}"\nlearning_rate = {{ lora = 3e-3, full = 1e-3 }}\n'
    )
    server = start_server(env={"GXFT_MODELS_FILE": str(registry)}, worker=True)
    client = server.client()
    train = processed(client, (SAMPLE_DATA / "sample_training_data.jsonl").read_bytes())
    jobs = {name: client.fine_tuning.jobs.create(model=name, training_file=train.id, hyperparameters={"n_epochs": 1})
            for name in ("broken/model", "missing/model", TINY)}
    done = {name: wait_done(client, job.id, patience=120) for name, job in jobs.items()}
    for name in ("broken/model", "missing/model"):
        assert done[name].status == "failed"
        assert done[name].error.code == "model_load_failed" and name in done[name].error.message
        assert done[name].error.param == "model"
    assert done[TINY].status == "succeeded", done[TINY].error
