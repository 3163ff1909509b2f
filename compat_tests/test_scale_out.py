"""Scale-out: one `gxft serve --no-worker`, a real redis-server, and two `gxft worker` processes that
share nothing but Redis and the server's URL."""

import re
import shutil
import subprocess
import time

import pytest

from compat_tests.conftest import unavailable
from compat_tests.server_process import ServerProcess, free_port, start_worker
from compat_tests.test_files import chat_line, jsonl, processed
from compat_tests.test_fine_tuning import TINY, all_events, wait_done, wait_for, wait_for_job


def needs(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        unavailable(f"{program} is not installed (scripts/install-test-packages installs it)")
    return path


@pytest.fixture
def redis_url(tmp_path):
    port = free_port()
    redis = subprocess.Popen(
        [needs("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    import redis as redis_client

    wait_for(lambda: _pings(redis_client.Redis.from_url(url)), timeout=20)
    yield url
    redis.terminate()
    redis.wait()


def _pings(connection) -> bool:
    try:
        return connection.ping()
    except Exception:
        return False


def _trained_by(log_path) -> list[str]:
    return re.findall(r"training job (ftjob-\w+)", log_path.read_text(errors="replace"))


def test_two_workers_share_six_jobs_through_redis_and_take_over_a_killed_ones_job(tmp_path, redis_url):
    env = {"GXFT_REDIS_URL": redis_url, "GXFT_LEASE_SECONDS": "3"}
    server = ServerProcess(tmp_path / "server", env=env, worker=False)
    logs, workers = [], []
    try:
        for name in ("a", "b"):
            own_dir = tmp_path / f"worker-{name}"  # nothing shared with the server or the other worker
            own_dir.mkdir()
            logs.append(tmp_path / f"worker-{name}.log")
            own_env = {**env, "GXFT_DATA_DIR": str(own_dir), "TMPDIR": str(own_dir)}
            workers.append(start_worker(server, logs[-1], env=own_env))
        client = server.client()
        train = processed(client, jsonl(chat_line(i) for i in range(12)))
        jobs = [client.fine_tuning.jobs.create(model=TINY, training_file=train.id, hyperparameters={"n_epochs": 2})
                for _ in range(6)]
        for job in jobs:
            done = wait_done(client, job.id, patience=240)
            assert done.status == "succeeded", done.error
            started = [e.message for e in all_events(client, job.id) if e.message.startswith("Fine-tuning job")]
            assert started == ["Fine-tuning job started"]  # claimed once, never resumed
        trained = [_trained_by(log) for log in logs]
        assert sorted(trained[0] + trained[1]) == sorted(job.id for job in jobs)  # each trained exactly once
        assert trained[0] and trained[1], "both workers took jobs"

        long_job = client.fine_tuning.jobs.create(model=TINY, training_file=train.id,
                                                  hyperparameters={"n_epochs": 10, "batch_size": 1})
        holder = None  # the index of the worker that took it (0 is a valid index, so no wait_for)
        deadline = time.monotonic() + 60
        while holder is None and time.monotonic() < deadline:
            holder = next((i for i, log in enumerate(logs) if long_job.id in _trained_by(log)), None)
            time.sleep(0.1)
        assert holder is not None
        wait_for_job(client, long_job.id,
                     lambda _: len(client.fine_tuning.jobs.checkpoints.list(long_job.id).data) >= 1, patience=120)
        workers[holder].kill()
        workers[holder].wait()
        other = 1 - holder
        done = wait_done(client, long_job.id, patience=240)
        assert done.status == "succeeded", done.error
        assert done.model_extra["trained_steps"] == done.model_extra["total_steps"]
        assert long_job.id in _trained_by(logs[other])
        messages = [e.message for e in all_events(client, long_job.id)]
        assert any(m.startswith("The worker running this job stopped reporting") for m in messages)
        assert any(m.startswith("Fine-tuning job resumed from step") for m in messages)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
                worker.wait()
        server.stop()
