"""`gxft worker`: a huey consumer that trains one job at a time for a GXFT server.

It needs only the queue (SQLite file in the data dir, or Redis through GXFT_REDIS_URL) and the
server's URL with the worker token (GXFT_WORKER_TOKEN); it never opens the server's storage. It
registers with the token when it starts and works with the key the server answers from then on.
"""

import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path

import httpx2

from contract.internal_api import WorkerRegistration
from contract.job_queue import QUEUE_FILENAME, open_queue
from worker.client import ServerRefused, WorkerClient
from worker.parent_watch import exit_with_parent
from worker.runner import JobRunner

log = logging.getLogger("gxft.worker")

HEARTBEAT_SECONDS = 10.0


def _this_machine() -> WorkerRegistration:
    import torch

    if torch.cuda.is_available():
        devices = [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]
        return WorkerRegistration(accelerator="cuda", devices=devices)
    return WorkerRegistration(accelerator="cpu")


def _keep_announcing(client: WorkerClient) -> None:
    """Tell the server every few seconds that this worker is still here."""

    def announce() -> None:
        while True:
            try:
                client.heartbeat(patience=HEARTBEAT_SECONDS)
            except (httpx2.HTTPError, ServerRefused) as exc:
                log.debug("heartbeat not delivered: %s", exc)
            time.sleep(HEARTBEAT_SECONDS)

    threading.Thread(target=announce, name="heartbeat", daemon=True).start()


def run_worker(server_url: str, queue_path: str | None = None, parent_pid: int | None = None, procs: int = 1) -> int:
    token = os.environ.get("GXFT_WORKER_TOKEN")
    if not token:
        print("gxft worker: set GXFT_WORKER_TOKEN to the server's worker token "
              "(the file worker_token in the server's data dir)", file=sys.stderr)
        return 2
    redis_url = os.environ.get("GXFT_REDIS_URL") or None
    if queue_path is None and redis_url is None:
        queue_path = str(Path(os.environ.get("GXFT_DATA_DIR", "gxft-data")).resolve() / QUEUE_FILENAME)
    if parent_pid:  # the embedded worker ends when `gxft serve` ends, even if the server was killed
        exit_with_parent(parent_pid, "the embedded worker")
    machine = _this_machine()
    try:  # waits for a server that is still starting (the embedded worker starts beside it)
        registered = WorkerClient(server_url, token).register(machine)
    except (httpx2.HTTPError, ServerRefused) as exc:
        print(f"gxft worker: {server_url} did not register this worker: {exc}", file=sys.stderr)
        return 2
    log.info("worker %s on %s: %s; %d training process(es) per job", registered.worker_id, socket.gethostname(),
             ", ".join(machine.devices) or "CPU only", procs)
    _keep_announcing(WorkerClient(server_url, registered.worker_key))
    runner = JobRunner(server_url, registered.worker_key, procs)
    queue = open_queue(Path(queue_path) if queue_path else None, redis_url, run_job=runner.run)
    log.info("worker %s serving %s from %s", registered.worker_id, server_url, redis_url or queue_path)
    consumer = queue.huey.create_consumer(
        workers=1, worker_type="thread", periodic=False, initial_delay=0.05, backoff=1.5, max_delay=0.5
    )
    consumer.run()
    return 0
