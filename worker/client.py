"""The worker's side of the internal API: the only way a worker reaches jobs, files and results.

Every call goes through one retry policy: a transport error (the server restarting, a dropped
connection) is retried with backoff until the call's patience runs out, so a server restart costs a
running job nothing. An answer from the server, error or not, is never retried.
"""

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import msgspec

from contract.error_envelope import ErrorResponse
from contract.graders import SamplingParams
from contract.internal_api import (
    CheckpointReport,
    CompletionReport,
    FailureReport,
    GraderEmbeddingAnswer,
    GraderEmbeddingRequest,
    GraderModelAnswer,
    GraderModelRequest,
    JobSpec,
    Order,
    ProgressReport,
    RegisteredWorker,
    ReportReply,
    StoredBlob,
    WorkerRegistration,
)
from grading.model_graders import ModelAnswer, ModelServerError

log = logging.getLogger("gxft.worker")
T = TypeVar("T")

# How long a call keeps retrying while the server cannot be reached: long enough for a restart.
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
            error = msgspec.json.decode(response.read(), type=ErrorResponse).error
            return cls(response.status_code, error.code, error.message)
        except msgspec.DecodeError:
            return cls(response.status_code, None, response.text[:500])


def _check(response: httpx2.Response) -> None:
    if response.status_code == 409:
        raise JobTaken(response.read().decode(errors="replace"))
    if response.status_code >= 400:
        raise ServerRefused.from_response(response)


class WorkerClient:
    """The internal API with one credential: the worker token (only to `register`), or the key that
    registering answers (everything else)."""

    def __init__(self, server_url: str, credential: str):
        self.server_url = server_url
        self.http = httpx2.Client(
            base_url=server_url.rstrip("/"),
            headers={"Authorization": f"Bearer {credential}"},
            timeout=httpx2.Timeout(120.0, connect=5.0),
        )

    def register(self, registration: WorkerRegistration) -> RegisteredWorker:
        return self._post("/internal/workers/register", registration, RegisteredWorker)

    def _with_retries(self, what: str, attempt: Any, patience: float = RECONNECT_SECONDS) -> Any:
        """`attempt()`, again after each transport error until `patience` seconds have passed."""
        deadline = time.monotonic() + patience
        delay = 0.2
        while True:
            try:
                return attempt()
            except httpx2.TransportError as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("%s: server unreachable (%s); retrying in %.1fs", what, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _request(self, method: str, path: str, upload: Path | None = None, patience: float = RECONNECT_SECONDS,
                 **kwargs: Any) -> httpx2.Response:
        def attempt() -> httpx2.Response:
            if upload is not None:
                kwargs["content"] = self._chunks(upload)  # a fresh stream for every attempt
            response = self.http.request(method, path, **kwargs)
            _check(response)
            return response

        return self._with_retries(f"{method} {path}", attempt, patience)

    def _post(self, path: str, body: msgspec.Struct | None, reply_type: type[T],
              patience: float = RECONNECT_SECONDS) -> T:
        response = self._request(
            "POST", path, content=msgspec.json.encode(body) if body is not None else b"",
            headers={"Content-Type": "application/json"}, patience=patience,
        )
        return msgspec.json.decode(response.content, type=reply_type)

    def claim(self, job_id: str) -> JobSpec | None:
        try:
            return self._post(f"/internal/jobs/{job_id}/claim", None, JobSpec)
        except JobTaken:
            return None

    def report(self, job_id: str, report: ProgressReport) -> Order:
        return self._post(f"/internal/jobs/{job_id}/report", report, ReportReply).order

    def renew_lease(self, job_id: str, patience: float = RECONNECT_SECONDS) -> Order:
        return self._post(f"/internal/jobs/{job_id}/lease", None, ReportReply, patience=patience).order

    def _download(self, path: str, destination: Path) -> Path:
        def attempt() -> Path:  # a broken download starts again from the first byte
            with self.http.stream("GET", path) as response:
                _check(response)
                with open(destination, "wb") as handle:
                    for chunk in response.iter_bytes(1 << 20):
                        handle.write(chunk)
            return destination

        return self._with_retries(f"GET {path}", attempt)

    def download_file(self, job_id: str, file_id: str, destination: Path) -> Path:
        """A file the job trains on (its worker reads those files alone)."""
        return self._download(f"/internal/jobs/{job_id}/files/{file_id}", destination)

    def download_state(self, job_id: str, blob_id: str, destination: Path) -> Path:
        return self._download(f"/internal/jobs/{job_id}/state/{blob_id}", destination)

    @staticmethod
    def _chunks(path: Path) -> Iterator[bytes]:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                yield chunk

    def upload_result_file(self, job_id: str, path: Path) -> str:
        """Stage a result file; the checkpoint or completion report that names it makes it a file."""
        response = self._request("POST", f"/internal/jobs/{job_id}/files", upload=path)
        return msgspec.json.decode(response.content, type=StoredBlob).id

    def upload_state(self, job_id: str, path: Path) -> str:
        response = self._request("POST", f"/internal/jobs/{job_id}/blobs", upload=path)
        return msgspec.json.decode(response.content, type=StoredBlob).id

    def add_checkpoint(self, job_id: str, report: CheckpointReport) -> Order:
        return self._post(f"/internal/jobs/{job_id}/checkpoints", report, ReportReply).order

    def complete(self, job_id: str, report: CompletionReport) -> None:
        self._post(f"/internal/jobs/{job_id}/complete", report, dict)

    def fail(self, job_id: str, report: FailureReport) -> None:
        self._post(f"/internal/jobs/{job_id}/fail", report, dict)

    def ask_grader_model(self, job_id: str, question: GraderModelRequest) -> GraderModelAnswer:
        return self._post(f"/internal/jobs/{job_id}/grader_model", question, GraderModelAnswer)

    def embed_for_grader(self, job_id: str, texts: list[str]) -> list[list[float]]:
        answer = self._post(f"/internal/jobs/{job_id}/embeddings", GraderEmbeddingRequest(texts=texts),
                            GraderEmbeddingAnswer)
        return answer.vectors

    def heartbeat(self, patience: float) -> None:
        """Patient only until the next heartbeat is due: that one says the same, and newer."""
        self._request("POST", "/internal/workers/heartbeat", patience=patience)

    def close(self) -> None:
        self.http.close()


class ServerGraderModel:
    """A reinforcement job's grader models (score_model, label_model) and the cosine grader's embedding
    model, served by the server: a worker holds no model but the one it trains."""

    def __init__(self, client: WorkerClient, job_id: str):
        self.client = client
        self.job_id = job_id

    def complete(self, model: str, messages: list[dict[str, str]], json_schema: dict[str, Any],
                 sampling: SamplingParams | None) -> ModelAnswer:
        question = GraderModelRequest(model=model, messages=messages, json_schema=json_schema, sampling=sampling)
        try:
            answer = self.client.ask_grader_model(self.job_id, question)
        except ServerRefused as exc:
            raise ModelServerError(exc.message) from None
        return ModelAnswer(answer.text, answer.prompt_tokens, answer.completion_tokens)

    def vectors(self, texts: list[str]) -> list[list[float]]:
        try:
            return self.client.embed_for_grader(self.job_id, texts)
        except ServerRefused as exc:
            raise ModelServerError(exc.message) from None
