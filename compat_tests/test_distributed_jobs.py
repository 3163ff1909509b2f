"""A job trained by `gxft worker --procs 2` (two processes under torch.distributed, gloo on the CPU) is one
job to its user: the same per-step losses, tokens and checkpoints as on one process, paused on two and
resumed on one; a cancel stops every rank, a killed training process fails the job with the reason, and a
killed worker takes its ranks with it while another worker finishes the job: none is ever left running."""

import os
import signal
import subprocess
import time

import openai
import pytest

from compat_tests.server_process import ServerProcess, start_worker
from compat_tests.test_files import jsonl, processed
from compat_tests.test_fine_tuning import TINY, all_events, metrics_events, wait_done, wait_for, wait_for_job

HYPERPARAMETERS = {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 2.0}


def _lines() -> bytes:
    # Uneven lengths: the deal of examples between the ranks balances tokens, not just counts.
    return jsonl({"messages": [{"role": "user", "content": f"Question {i}?" + " please" * (i % 4)},
                               {"role": "assistant", "content": f"Answer {i}." + " Indeed" * (i % 3)}]}
                 for i in range(10))


@pytest.fixture
def server(tmp_path):
    process = ServerProcess(tmp_path / "server", worker=False)
    yield process
    process.stop()


class Workers:
    def __init__(self, server: ServerProcess, folder):
        self.server, self.folder = server, folder
        self.running: subprocess.Popen | None = None

    def start(self, procs: int) -> subprocess.Popen:
        self.stop()
        self.running = start_worker(self.server, self.folder / f"worker-{procs}.log", options=("--procs", str(procs)))
        return self.running

    def stop(self) -> None:
        if self.running is not None:
            self.running.terminate()
            self.running.wait(timeout=30)
            self.running = None


@pytest.fixture
def workers(server, tmp_path):
    pool = Workers(server, tmp_path)
    yield pool
    pool.stop()


def _losses(client, job_id: str) -> list[float]:
    return [e.data["train_loss"] for e in metrics_events(client, job_id)]


def _largest_relative(first: list[float], second: list[float]) -> float:
    assert len(first) == len(second)
    return max(abs(a - b) / abs(a) for a, b in zip(first, second, strict=True))


def _rank_pids(worker: subprocess.Popen) -> list[int]:
    """The worker's training processes (its children running torch.multiprocessing's spawn)."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read()
        except OSError:
            continue
        if parent == worker.pid and b"multiprocessing" in command and b"spawn_main" in command:
            children.append(int(entry))
    return sorted(children)


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_a_job_on_two_processes_is_the_same_job_as_on_one(server, workers, lora):
    client = server.client()
    train = processed(client, _lines())
    hyperparameters = {**HYPERPARAMETERS, **({} if lora else {"lora": False})}
    jobs = {}
    for procs in (1, 2):
        workers.start(procs)
        job = client.fine_tuning.jobs.create(model=TINY, training_file=train.id, seed=5,
                                             method={"type": "supervised",
                                                     "supervised": {"hyperparameters": hyperparameters}})
        done = wait_done(client, job.id, patience=240)
        assert done.status == "succeeded", done.error
        jobs[procs] = done
    one, two = jobs[1], jobs[2]
    assert _largest_relative(_losses(client, one.id), _losses(client, two.id)) < 1e-4
    assert one.trained_tokens == two.trained_tokens  # each token counted once
    steps = [[c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id)] for job in (one, two)]
    assert steps[0] == steps[1] == [6, 3]
    messages = [e.message for e in all_events(client, two.id)]
    assert messages.count("Fine-tuning job started") == 1
    assert sum(m.startswith("Step 1/") for m in messages) == 1  # one rank reports
    assert len(two.result_files) == 1


def test_a_job_paused_on_two_processes_resumes_on_one(server, workers):
    # "paused" is missing from the SDK's status enum (OpenAI's own API returns it): a lenient client.
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="k", max_retries=0)
    train = processed(client, _lines())
    hyperparameters = {**HYPERPARAMETERS, "n_epochs": 20, "lora": False}
    method = {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}}
    workers.start(1)
    whole = wait_done(client, client.fine_tuning.jobs.create(model=TINY, training_file=train.id, seed=5,
                                                             method=method).id, patience=240)
    assert whole.status == "succeeded", whole.error
    workers.start(2)
    job = client.fine_tuning.jobs.create(model=TINY, training_file=train.id, seed=5, method=method)
    wait_for(lambda: len(metrics_events(client, job.id)) >= 2, timeout=240)
    assert client.fine_tuning.jobs.pause(job.id).status == "paused"
    wait_for(lambda: any(e.message.startswith("The job was paused at step") for e in all_events(client, job.id)),
             timeout=120)
    workers.start(1)  # the job resumes on another number of processes
    client.fine_tuning.jobs.resume(job.id)
    done = wait_done(client, job.id, patience=240)
    assert done.status == "succeeded", done.error
    assert _largest_relative(_losses(client, whole.id), _losses(client, job.id)) < 1e-4


def _wait_for_no_rank(worker: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while _rank_pids(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _rank_pids(worker) == []  # no rank left behind


def test_a_cancel_stops_every_rank_and_a_killed_one_fails_the_job(server, workers):
    client = server.client()
    train = processed(client, _lines())
    worker = workers.start(2)
    hyperparameters = {**HYPERPARAMETERS, "n_epochs": 50, "batch_size": 2}
    method = {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}}

    cancelled = client.fine_tuning.jobs.create(model=TINY, training_file=train.id, method=method)
    wait_for(lambda: len(metrics_events(client, cancelled.id)) >= 1, timeout=240)
    assert len(_rank_pids(worker)) == 2
    assert client.fine_tuning.jobs.cancel(cancelled.id).status == "cancelled"
    _wait_for_no_rank(worker)
    steps = len(metrics_events(client, cancelled.id))
    assert client.fine_tuning.jobs.retrieve(cancelled.id).status == "cancelled"

    job = client.fine_tuning.jobs.create(model=TINY, training_file=train.id, method=method)
    wait_for(lambda: len(metrics_events(client, job.id)) >= 1, timeout=240)
    ranks = _rank_pids(worker)
    assert len(ranks) == 2
    os.kill(ranks[1], signal.SIGKILL)
    failed = wait_done(client, job.id, patience=120)
    assert failed.status == "failed"
    assert failed.error.code == "training_failed"
    assert "was killed by SIGKILL" in failed.error.message
    _wait_for_no_rank(worker)

    after = client.fine_tuning.jobs.create(model=TINY, training_file=train.id, hyperparameters=HYPERPARAMETERS)
    assert wait_done(client, after.id, patience=240).status == "succeeded"
    assert len(metrics_events(client, cancelled.id)) == steps  # the cancelled job trained no step after


def _running(pid: int) -> bool:
    """Whether the process runs (a zombie, which a container's first process may never reap, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_a_killed_worker_takes_its_ranks_with_it_and_another_finishes_the_job(start_server, tmp_path):
    server = start_server(env={"GXFT_LEASE_SECONDS": "2"}, worker=False)
    client = server.client()
    train = processed(client, _lines())
    pool = Workers(server, tmp_path)
    try:
        first = pool.start(2)
        method = {"type": "supervised", "supervised": {"hyperparameters": {**HYPERPARAMETERS, "n_epochs": 30}}}
        job = client.fine_tuning.jobs.create(model=TINY, training_file=train.id, seed=5, method=method)
        wait_for_job(client, job.id, lambda _: len(client.fine_tuning.jobs.checkpoints.list(job.id).data) >= 1,
                     patience=240)
        ranks = _rank_pids(first)
        assert len(ranks) == 2
        first.kill()
        first.wait()
        killed_at = client.fine_tuning.jobs.retrieve(job.id).model_extra["trained_steps"]
        wait_for(lambda: not any(_running(pid) for pid in ranks), timeout=10)  # the ranks end with their worker
        pool.start(1)
        done = wait_done(client, job.id, patience=240)
    finally:
        pool.stop()
    assert done.status == "succeeded", done.error
    messages = [e.message for e in all_events(client, job.id)]
    assert any(m.startswith("The worker running this job stopped reporting") for m in messages)
    resumed = [m for m in messages if m.startswith("Fine-tuning job resumed from step")]
    assert resumed and int(resumed[0].rsplit(" ", 1)[1]) <= killed_at
    assert {e.data["step"] for e in metrics_events(client, job.id)} == set(range(1, 91))
