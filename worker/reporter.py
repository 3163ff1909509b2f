"""Progress reports off the training loop's path: events are batched and sent by a background thread.

The loop only appends to a buffer; every `interval` seconds the thread posts what has gathered
(which also renews the job's lease) and keeps the server's latest order (continue, pause, or stop when
the server refuses the report because the job is no longer this worker's) for the loop to read after
each step. The server's job status is the truth, so a later answer replaces an earlier one: a pause
followed by a resume is heard as "continue".
"""

import logging
import threading
import time
from typing import Any

from contract.internal_api import Order, ProgressReport, WorkerEvent
from contract.literals import EventLevel, EventType
from worker.client import JobTaken, WorkerClient

log = logging.getLogger("gxft.worker")


class ProgressReporter:
    def __init__(self, client: WorkerClient, job_id: str, interval: float = 0.5):
        self.client = client
        self.job_id = job_id
        self.interval = interval
        self.order: Order = "continue"
        self._events: list[WorkerEvent] = []
        self._progress: dict[str, Any] = {"trained_steps": 0, "total_steps": None, "trained_tokens": 0,
                                          "estimated_finish": None}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"report-{job_id}", daemon=True)

    def __enter__(self) -> "ProgressReporter":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stopped.set()
        self._thread.join()
        self.flush()

    def event(self, message: str, *, level: EventLevel = "info", type: EventType = "message", data: Any = None) -> None:
        with self._lock:
            self._events.append(
                WorkerEvent(created_at=int(time.time()), message=message, level=level, type=type, data=data)
            )

    def progress(self, **values: Any) -> None:
        with self._lock:
            self._progress.update(values)

    def flush(self) -> Order:
        with self._send_lock:
            with self._lock:
                events, self._events = self._events, []
                report = ProgressReport(events=events, **self._progress)
            try:
                order = self.client.report(self.job_id, report)
            except JobTaken:  # cancelled, ended or taken back: the loop stops at its next step
                self.order = "stop"
                return self.order
            except Exception:
                with self._lock:
                    self._events[:0] = events  # keep them for the next try: nothing is lost
                raise
            self.order = order
            return order

    def heard(self, order: Order) -> None:
        """An order heard outside the reports (a checkpoint's answer): newer than any report in flight."""
        with self._send_lock:
            if self.order != "stop":
                self.order = order

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                self.flush()
            except Exception as exc:
                log.warning("progress report for %s failed: %s", self.job_id, exc)
