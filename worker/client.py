"""The worker's side of the internal API: the only way a worker reaches jobs, files and results."""

import logging
import time
from pathlib import Path
from typing import Any, Iterator, TypeVar

import httpx2
import msgspec

from server.internal_protocol import (
    CheckpointReport, ClaimRequest, CompletionReport, FailureReport, JobSpec, Order, ProgressReport, ReportReply,
    StoredBlob, WorkerHeartbeat,
)
from server.protocol import ErrorResponse

log = logging.getLogger("gxft.worker")
T = TypeVar("T")

# A server restart must not cost a running job: keep retrying connection failures this long.
RECONNECT_SECONDS = 300.0


class JobTaken(Exception):
    """The server says the job is not (or no longer) this worker's."""


class ServerRefused(Exception):
    """The server answered a request with an error (OpenAI's error envelope)."""

    def __init__(self, status: int, code: str | None, message: str):
        super().__init__(f"{status} {code or ''}: {message}")
        self.status = status
        self.code = code
        self.message = message

    @classmethod
    def from_response(cls, response: httpx2.Response) -> "ServerRefused":
        try:
            error = msgspec.json.decode(response.content, type=ErrorResponse).error
            return cls(response.status_code, error.code, error.message)
        except msgspec.DecodeError:
            return cls(response.status_code, None, response.text[:500])


class WorkerClient:
    def __init__(self, server_url: str, token: str, worker_id: str):
        self.worker_id = worker_id
        self.http = httpx2.Client(
            base_url=server_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx2.Timeout(120.0, connect=5.0),
        )

    def _request(self, method: str, path: str, upload: Path | None = None, **kwargs: Any) -> httpx2.Response:
        deadline = time.monotonic() + RECONNECT_SECONDS
        delay = 0.2
        while True:
            if upload is not None:
                kwargs["content"] = self._chunks(upload)  # a fresh stream for every attempt
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx2.TransportError as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("server unreachable (%s); retrying in %.1fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if response.status_code == 409:
                raise JobTaken(response.text)
            if response.status_code >= 400:
                raise ServerRefused.from_response(response)
            return response

    def _post(self, path: str, body: msgspec.Struct, reply_type: type[T]) -> T:
        response = self._request(
            "POST", path, content=msgspec.json.encode(body), headers={"Content-Type": "application/json"}
        )
        return msgspec.json.decode(response.content, type=reply_type)

    def claim(self, job_id: str) -> JobSpec | None:
        try:
            return self._post(f"/internal/jobs/{job_id}/claim", ClaimRequest(worker_id=self.worker_id), JobSpec)
        except JobTaken:
            return None

    def report(self, job_id: str, report: ProgressReport) -> Order:
        return self._post(f"/internal/jobs/{job_id}/report", report, ReportReply).order

    def _download(self, path: str, destination: Path) -> Path:
        with self.http.stream("GET", path) as response:
            response.raise_for_status()
            with open(destination, "wb") as handle:
                for chunk in response.iter_bytes(1 << 20):
                    handle.write(chunk)
        return destination

    def download_file(self, file_id: str, destination: Path) -> Path:
        return self._download(f"/internal/files/{file_id}/content", destination)

    def download_blob(self, blob_id: str, destination: Path) -> Path:
        return self._download(f"/internal/blobs/{blob_id}", destination)

    @staticmethod
    def _chunks(path: Path) -> Iterator[bytes]:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                yield chunk

    def upload_file(self, job_id: str, path: Path) -> str:
        """Stage a result file; the checkpoint or completion report that names it makes it a file."""
        response = self._request(
            "POST", f"/internal/jobs/{job_id}/files", params={"worker_id": self.worker_id}, upload=path
        )
        return msgspec.json.decode(response.content, type=StoredBlob).id

    def upload_blob(self, job_id: str, path: Path) -> str:
        response = self._request(
            "POST", f"/internal/jobs/{job_id}/blobs", params={"worker_id": self.worker_id}, upload=path
        )
        return msgspec.json.decode(response.content, type=StoredBlob).id

    def add_checkpoint(self, job_id: str, report: CheckpointReport) -> None:
        self._post(f"/internal/jobs/{job_id}/checkpoints", report, dict)

    def complete(self, job_id: str, report: CompletionReport) -> None:
        self._post(f"/internal/jobs/{job_id}/complete", report, dict)

    def fail(self, job_id: str, report: FailureReport) -> None:
        self._post(f"/internal/jobs/{job_id}/fail", report, dict)

    def heartbeat(self, heartbeat: WorkerHeartbeat) -> None:
        """One try, no retries: the next heartbeat comes soon anyway."""
        response = self.http.post(
            "/internal/workers/heartbeat", content=msgspec.json.encode(heartbeat),
            headers={"Content-Type": "application/json"},
        )
        response.raise_for_status()

    def close(self) -> None:
        self.http.close()
