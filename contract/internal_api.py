"""Wire objects of the internal API between the server and its workers (`/internal/...`)."""

from typing import Any, Literal

import msgspec

from contract.literals import DataFormat, EventLevel, EventType, Method
from contract.training_settings import TrainingSettings


class ClaimRequest(msgspec.Struct):
    worker_id: str


class ResumePoint(msgspec.Struct):
    checkpoint_id: str
    step_number: int
    state_blob: str


class StartingWeights(msgspec.Struct, kw_only=True):
    """The fine-tuned model a job continues from: its checkpoint's files, by name."""

    model: str  # its name, for messages
    files: dict[str, str]  # file name → file id (fetched like training files)
    adapter: bool  # True: a LoRA adapter on the job's base model; False: full weights


class JobSpec(msgspec.Struct, kw_only=True):
    """What a worker needs to train a job, handed over when it claims the job."""

    job_id: str
    method: Method = "supervised"
    base_model: str
    model_path: str
    training_file: str
    validation_file: str | None
    data_format: DataFormat
    seed: int
    settings: TrainingSettings
    starting_weights: StartingWeights | None = None
    resume: ResumePoint | None = None
    integrations: list[dict[str, Any]] = []


class WorkerHeartbeat(msgspec.Struct, kw_only=True):
    """A worker's periodic "I am here", with what it can train on."""

    worker_id: str
    accelerator: Literal["cuda", "cpu"]
    devices: list[str] = []  # e.g. ["NVIDIA H100 80GB HBM3"]


class WorkerEvent(msgspec.Struct, kw_only=True):
    created_at: int
    message: str
    level: EventLevel = "info"
    type: EventType = "message"
    data: Any = None


class ProgressReport(msgspec.Struct, kw_only=True):
    worker_id: str
    events: list[WorkerEvent] = []
    trained_steps: int = 0
    total_steps: int | None = None
    trained_tokens: int = 0
    estimated_finish: int | None = None


# What the training loop hears after each step: go on, save a pause checkpoint, or stop because the job
# is no longer this worker's (cancelled, ended or taken back: the server refuses its reports with 409).
Order = Literal["continue", "pause", "stop"]


class ReportReply(msgspec.Struct):
    """The user's latest order for a job its worker still holds: "continue" or "pause"."""

    order: Order


class CheckpointReport(msgspec.Struct, kw_only=True):
    worker_id: str
    step_number: int
    metrics: dict[str, float]
    result_files: dict[str, str]  # file name → staged blob (`POST /internal/jobs/{id}/files`)
    state_blob: str | None = None
    final: bool = False
    paused: bool = False


class CompletionReport(msgspec.Struct, kw_only=True):
    worker_id: str
    trained_tokens: int
    result_files: dict[str, str]  # file name → staged blob: the step metrics CSV


class FailureReport(msgspec.Struct, kw_only=True):
    worker_id: str
    code: str
    message: str
    param: str | None = None


class StoredBlob(msgspec.Struct):
    id: str
    bytes: int
