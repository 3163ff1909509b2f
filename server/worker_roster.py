"""The workers this server has heard from lately, and what they can train on.

Workers announce themselves every few seconds (`POST /internal/workers/heartbeat`). The roster lives
in memory: after a server restart it fills again within one heartbeat. Job creation asks it whether
a GPU-only feature (QLoRA) can run at all, so such a job is refused at once rather than left queued.
"""

import time

from contract.internal_api import WorkerHeartbeat

# A worker that missed this many seconds of heartbeats is taken to be gone.
SILENCE_SECONDS = 60.0


class WorkerRoster:
    def __init__(self) -> None:
        self._seen: dict[str, tuple[float, WorkerHeartbeat]] = {}

    def heard(self, heartbeat: WorkerHeartbeat) -> None:
        self._seen[heartbeat.worker_id] = (time.monotonic(), heartbeat)

    def live(self) -> list[WorkerHeartbeat]:
        cutoff = time.monotonic() - SILENCE_SECONDS
        return [heartbeat for seen, heartbeat in self._seen.values() if seen >= cutoff]

    def has_cuda(self) -> bool:
        return any(worker.accelerator == "cuda" for worker in self.live())

    def describe(self) -> str:
        """For error messages: e.g. "2 workers, both CPU only"."""
        live = self.live()
        if not live:
            return "no worker has connected in the last minute; one that is starting announces itself within seconds"
        gpus = [worker for worker in live if worker.accelerator == "cuda"]
        return f"{len(live)} worker(s) connected, {len(gpus)} with a CUDA GPU"
