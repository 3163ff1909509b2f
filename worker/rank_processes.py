"""A job as N processes on this machine (`gxft worker --procs N`): one per GPU, or N on the CPU (gloo).

The worker process claims the job, as always, and starts its ranks with torch.multiprocessing ("spawn":
fresh interpreters, so every job starts with clean CUDA state and a crashed rank cannot take the worker
down). torchrun would start the whole worker N times, each a queue consumer; here the worker stays one
consumer with one identity and heartbeat, and the ranks live exactly as long as the job.

Rank 0 alone talks to the server (worker/runner.py's `run_job`: files, events, checkpoints, the outcome)
and passes the server's orders to the others (`LeaderHooks`). The worker keeps the job's lease meanwhile
(`LeaseKeeper`): rank 0 renews it with each report too, but only once it has started Python, imported
torch and loaded the model, which on a busy node can outlast the lease. The worker watches the ranks: when
one dies before rank 0 has ended (killed, out of memory), it stops the rest and fails the job with the
reason, so a job is never left running on a broken group. Ranks end with the worker if it is killed; the
server's lease then hands the job on, as for any lost worker.
"""

import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import torch.multiprocessing as mp

from contract.internal_api import FailureReport, JobSpec
from worker import distributed
from worker.client import JobTaken, ServerRefused, WorkerClient
from worker.distributed import Share
from worker.parent_watch import exit_with_parent
from worker.runner import follow_job, run_job

log = logging.getLogger("gxft.worker")

FOLLOWERS_GRACE_SECONDS = 60.0  # after rank 0 ends, for the others to finish their last step
LEASE_RENEWAL_SECONDS = 1.0  # as often as the shortest lease a test sets needs it (2 s), and cheap


class LeaseKeeper:
    """Renews the job's lease from the worker process until the job's processes have ended, or the job is no
    longer this worker's (then rank 0 hears it too, and stops)."""

    def __init__(self, server_url: str, worker_key: str, job_id: str):
        self.client = WorkerClient(server_url, worker_key)
        self.job_id = job_id
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> "LeaseKeeper":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stopped.set()
        self._thread.join(timeout=2 * LEASE_RENEWAL_SECONDS)
        self.client.close()

    def _run(self) -> None:
        while not self._stopped.wait(LEASE_RENEWAL_SECONDS):
            try:
                self.client.renew_lease(self.job_id, patience=LEASE_RENEWAL_SECONDS)
            except JobTaken:
                return
            except Exception as exc:
                log.warning("lease renewal for %s failed: %s", self.job_id, exc)


def free_port() -> int:
    """A port for the ranks' rendezvous on this machine."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, parent_pid: int, spec: JobSpec, server_url: str,
               worker_key: str, workdir: str) -> None:
    exit_with_parent(parent_pid, f"training process {rank}")
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s rank {rank} %(levelname)s %(message)s")
    share = Share(rank, world)
    distributed.start(share, "127.0.0.1", port)
    try:
        if share.leader:
            client = WorkerClient(server_url, worker_key)
            try:
                run_job(client, spec, share, Path(workdir))
            finally:
                client.close()
        else:
            follow_job(spec, share, Path(workdir))
    finally:
        distributed.stop()


def _ended(exitcode: int) -> str:
    if exitcode < 0:
        return f"was killed by {signal.Signals(-exitcode).name}"
    return f"exited with status {exitcode}"


def run_job_on_processes(client: WorkerClient, spec: JobSpec, worker_key: str, procs: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix=f"gxft-{spec.job_id}-"))
    log.info("job %s: %d training processes", spec.job_id, procs)
    context = mp.start_processes(
        _rank_main, args=(procs, free_port(), os.getpid(), spec, client.server_url, worker_key, str(workdir)),
        nprocs=procs, join=False, start_method="spawn",
    )
    ranks = context.processes
    try:
        with LeaseKeeper(client.server_url, worker_key, spec.job_id):
            _watch(ranks, client, spec, procs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _watch(ranks: list, client: WorkerClient, spec: JobSpec, procs: int) -> None:
    """Until rank 0 has ended, or another rank has died; then the rest are stopped, and a death fails the job."""
    while ranks[0].exitcode is None and all(p.exitcode in (None, 0) for p in ranks[1:]):
        time.sleep(0.2)
    failed = any(p.exitcode not in (None, 0) for p in ranks)
    # A rank that dies takes the others down with it (their collectives fail): wait a moment for the
    # group to settle, then blame a rank killed by a signal before one that merely exited.
    deadline = time.monotonic() + (3.0 if failed else FOLLOWERS_GRACE_SECONDS)
    stopped_here = set()
    for rank, process in enumerate(ranks):
        process.join(max(deadline - time.monotonic(), 0))
        if process.is_alive():
            process.kill()
            process.join()
            stopped_here.add(rank)
    ended = sorted((p.exitcode >= 0, rank, p.exitcode) for rank, p in enumerate(ranks)
                   if p.exitcode not in (None, 0) and rank not in stopped_here)
    failure = f"training process {ended[0][1]} of {procs} {_ended(ended[0][2])}" if failed and ended else None
    if failure is not None:
        log.error("job %s failed: %s", spec.job_id, failure)
        try:
            client.fail(spec.job_id, FailureReport(
                code="training_failed", message=f"Training failed: {failure}; the other processes were stopped."))
        except (JobTaken, ServerRefused) as exc:  # it had ended already (cancelled, taken back)
            log.info("job %s: failure not recorded: %s", spec.job_id, exc)
