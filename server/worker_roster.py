"""The workers of this server: who registered, who each worker key stands for, who was heard from lately.

A worker registers when it starts: it presents the worker token (the one secret an operator gives
its workers) with what it trains on, and is answered an id and a key of its own. From then on it
presents that key alone, and the server knows which worker is speaking: a worker acts on the jobs
it holds and nothing else (server/jobs/transitions.py), whatever another worker's id it names. The
accelerator the server believes is the one a worker registered with; a heartbeat only says that the
worker is still there. Registrations are stored, so a server restart costs the workers nothing.

Job creation asks the roster whether a GPU-only feature (QLoRA) can run at all, so such a job is
refused at once rather than left queued.
"""

import hashlib
import secrets
import time

from contract.ids import new_id
from contract.internal_api import RegisteredWorker, WorkerRegistration
from storage.workers import WorkerRecord, WorkerRepository

# A worker that missed this many seconds of heartbeats is taken to be gone.
SILENCE_SECONDS = 60.0


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class WorkerRoster:
    def __init__(self, workers: WorkerRepository):
        self.workers = workers
        self._known: dict[str, WorkerRecord] = {}  # key hash → worker, for the keys seen since start
        self._seen: dict[str, tuple[float, WorkerRecord]] = {}  # worker id → when it was last heard

    def register(self, registration: WorkerRegistration) -> RegisteredWorker:
        key = secrets.token_urlsafe(32)
        worker = WorkerRecord(id=new_id("worker-", 16), key_hash=_hash(key), accelerator=registration.accelerator,
                              devices=registration.devices, registered_at=int(time.time()))
        self.workers.insert(worker)
        self.heard(worker)
        return RegisteredWorker(worker_id=worker.id, worker_key=key)

    def identify(self, key: str) -> WorkerRecord | None:
        """The registered worker whose key this is, or None."""
        key_hash = _hash(key)
        worker = self._known.get(key_hash) or self.workers.by_key_hash(key_hash)
        if worker is not None:
            self._known[key_hash] = worker
        return worker

    def heard(self, worker: WorkerRecord) -> None:
        self._seen[worker.id] = (time.monotonic(), worker)

    def live(self) -> list[WorkerRecord]:
        cutoff = time.monotonic() - SILENCE_SECONDS
        return [worker for seen, worker in self._seen.values() if seen >= cutoff]

    def has_cuda(self) -> bool:
        return any(worker.accelerator == "cuda" for worker in self.live())

    def describe(self) -> str:
        """For error messages: e.g. "2 workers, both CPU only"."""
        live = self.live()
        if not live:
            return "no worker has connected in the last minute; one that is starting announces itself within seconds"
        gpus = [worker for worker in live if worker.accelerator == "cuda"]
        return f"{len(live)} worker(s) connected, {len(gpus)} with a CUDA GPU"
