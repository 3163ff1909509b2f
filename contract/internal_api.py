"""Wire objects of the internal API between the server and its workers (`/internal/...`)."""

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from contract.graders import Grader, SamplingParams
from contract.literals import DataFormat, EventLevel, EventType, Method
from contract.training_settings import TrainingSettings


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
    # The GGUF file to convert into `model_path` on first use: a path, or `package/file` (contract/packaged_files.py)
    model_gguf: str | None = None
    training_file: str
    validation_file: str | None
    data_format: DataFormat
    seed: int
    settings: TrainingSettings
    starting_weights: StartingWeights | None = None
    resume: ResumePoint | None = None
    integrations: list[dict[str, Any]] = []
    grader: Grader | None = None  # a reinforcement job's: what each sampled answer is worth


Accelerator = Literal["cuda", "cpu"]


class WorkerRegistration(msgspec.Struct, kw_only=True):
    """What a worker says of itself when it starts (with the worker token): what it can train on."""

    accelerator: Accelerator
    devices: Annotated[list[Annotated[str, Meta(max_length=200)]], Meta(max_length=64)] = []  # ["NVIDIA H100 …"]


class RegisteredWorker(msgspec.Struct, kw_only=True):
    """The server's answer: the worker's id, and the key it presents from then on instead of the token."""

    worker_id: str
    worker_key: str


# Bounds on what a worker reports, so that the worker token cannot write without limit.
MAX_EVENTS_PER_REPORT = 1000
MAX_MESSAGE_CHARS = 2000
MAX_STEPS = 100_000_000
MAX_RESULT_FILES = 256
Name = Annotated[str, Meta(min_length=1, max_length=255)]
Count = Annotated[int, Meta(ge=0)]


class WorkerEvent(msgspec.Struct, kw_only=True):
    created_at: Count
    message: Annotated[str, Meta(max_length=MAX_MESSAGE_CHARS)]
    level: EventLevel = "info"
    type: EventType = "message"
    data: dict[Annotated[str, Meta(max_length=100)], Any] | None = None


class ProgressReport(msgspec.Struct, kw_only=True):
    events: Annotated[list[WorkerEvent], Meta(max_length=MAX_EVENTS_PER_REPORT)] = []
    trained_steps: Annotated[int, Meta(ge=0, le=MAX_STEPS)] = 0
    total_steps: Annotated[int, Meta(ge=1, le=MAX_STEPS)] | None = None
    trained_tokens: Count = 0
    estimated_finish: Count | None = None


# What the training loop hears after each step: go on, save a pause checkpoint, or stop because the job
# is no longer this worker's (cancelled, ended or taken back: the server refuses its reports with 409).
Order = Literal["continue", "pause", "stop"]


class ReportReply(msgspec.Struct):
    """The user's latest order for a job its worker still holds: "continue" or "pause". The answer to a
    pause checkpoint is "pause" once the worker has let go of the job, "continue" if it was resumed meanwhile."""

    order: Order


class CheckpointReport(msgspec.Struct, kw_only=True):
    step_number: Annotated[int, Meta(ge=1, le=MAX_STEPS)]
    metrics: Annotated[dict[Annotated[str, Meta(max_length=100)], float], Meta(max_length=64)]
    # file name → staged blob (`POST /internal/jobs/{id}/files`)
    result_files: Annotated[dict[Name, str], Meta(max_length=MAX_RESULT_FILES)]
    state_blob: str | None = None
    final: bool = False
    paused: bool = False


class CompletionReport(msgspec.Struct, kw_only=True):
    trained_tokens: Count
    result_files: Annotated[dict[Name, str], Meta(max_length=MAX_RESULT_FILES)]  # the step metrics CSV


class FailureReport(msgspec.Struct, kw_only=True):
    code: Annotated[str, Meta(min_length=1, max_length=64)]
    message: Annotated[str, Meta(max_length=MAX_MESSAGE_CHARS)]
    param: Annotated[str, Meta(max_length=100)] | None = None


class StoredBlob(msgspec.Struct):
    id: str
    bytes: int


class GraderModelRequest(msgspec.Struct, kw_only=True):
    """A reinforcement job's model grader, asked through the server, which serves the grader model."""

    model: str
    messages: list[dict[str, str]]
    json_schema: dict[str, Any]  # the answer's shape, held by structured outputs
    sampling: SamplingParams | None = None


class GraderModelAnswer(msgspec.Struct, kw_only=True):
    text: str
    prompt_tokens: int
    completion_tokens: int


class GraderEmbeddingRequest(msgspec.Struct, kw_only=True):
    """A reinforcement job's cosine grader: the texts to embed with the server's embedding model."""

    texts: list[str]


class GraderEmbeddingAnswer(msgspec.Struct, kw_only=True):
    vectors: list[list[float]]  # one per text, of length 1
