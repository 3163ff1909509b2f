"""The fine-tuning job state machine, shared by the public and the internal endpoints.

    queued ──claim──▶ running ──complete──▶ succeeded
      ▲                 │  │
      │                 │  └──fail──▶ failed
      │   lease expires ┘
      └── resume ◀── paused ◀── pause          any non-terminal ──cancel──▶ cancelled

Workers hold a lease on a running job, renewed by every report. A job whose worker goes silent
is queued again and the next worker resumes it from its last checkpoint. Orders for a running
job (cancel, pause) travel back to its worker in the answer to its next report.
"""

import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from server.config import Settings
from server.errors import APIError, invalid_request
from server.hyperparameters import hyperparameters_param, parse_requested, resolve
from server.internal_protocol import (
    CheckpointReport, CompletionReport, FailureReport, JobSpec, Order, ProgressReport, ResumePoint, StartingWeights,
)
from server.model_registry import BaseModel, ModelRegistry
from server.protocol import CreateFineTuningJobRequest
from server.uploads import clean_filename
from server.worker_roster import WorkerRoster
from storage.blobs import BlobStore
from storage.files import FileRecord, FileRepository
from storage.ids import new_id, random_base62
from storage.jobs import TERMINAL_STATUSES, CheckpointRecord, JobRecord, JobRepository
from worker.queue import JobQueue

log = logging.getLogger("gxft.jobs")

KEPT_CHECKPOINTS = 3
# Blobs a worker uploads for a checkpoint it has not yet added: result files and training state.
SCRATCH_KINDS = ("staged", "state")
MAX_SUFFIX_CHARS = 64
MAX_SEED = 2_147_483_647
# The file formats each method trains on, and how to say so in an error.
METHOD_FORMATS = {
    "supervised": ("chat", "prompt_completion", "text", "alpaca"),
    "dpo": ("preference",),
}
METHOD_FORMATS_TEXT = {
    "supervised": "chat, prompt/completion, text or alpaca files",
    "dpo": 'preference files (each line {"input": {"messages": [...]}, "preferred_output": [...], '
           '"non_preferred_output": [...]})',
}


class NotYours(APIError):
    """A worker reported on a job that is no longer assigned to it: it must stop working on it."""

    def __init__(self, job_id: str):
        super().__init__(409, f"Job {job_id} is not assigned to this worker.", code="job_not_owned")


@dataclass(frozen=True)
class StartingPoint:
    """What a new job trains: a base model, or a fine-tuned model (a checkpoint of an earlier job)."""

    base: BaseModel
    checkpoint: CheckpointRecord | None = None
    parent: JobRecord | None = None


def scratch_prefix(kind: str, job_id: str) -> str:
    return f"{kind}-{job_id}-"


def model_not_available(name: str, registry: ModelRegistry) -> APIError:
    return invalid_request(
        f"Model {name!r} is not available for fine-tuning or does not exist. Available models: "
        f"{', '.join(registry.names())}, or the name of one of your fine-tuned models or checkpoints (ft:…).",
        param="model",
        code="model_not_available",
    )


class JobLifecycle:
    def __init__(
        self,
        settings: Settings,
        jobs: JobRepository,
        files: FileRepository,
        blobs: BlobStore,
        registry: ModelRegistry,
        queue: JobQueue,
        workers: WorkerRoster,
    ):
        self.settings = settings
        self.jobs = jobs
        self.files = files
        self.blobs = blobs
        self.registry = registry
        self.queue = queue
        self.workers = workers

    def fine_tuned_model_name(self, job: JobRecord, name_id: str) -> str:
        """`ft:{base}:{project}:{suffix}:{id}`, where a continued job names the base of its first ancestor."""
        root = job
        while root.parent_checkpoint is not None:
            parent_job_id = self.jobs.checkpoint_job_id(root.parent_checkpoint)
            parent = self.jobs.get(parent_job_id) if parent_job_id else None
            if parent is None:
                break
            root = parent
        return f"ft:{root.model}:{job.project}:{job.suffix or ''}:{name_id}"

    # Public actions

    def _usable_file(self, project: str, file_id: str, param: str) -> FileRecord:
        record = self.files.get(project, file_id)
        if record is None:
            raise invalid_request(f"File {file_id!r} not found.", param=param, code="file_not_found")
        if record.purpose != "fine-tune":
            raise invalid_request(
                f"File {file_id!r} has purpose {record.purpose!r}; fine-tuning needs files uploaded with "
                "purpose 'fine-tune'.",
                param=param,
            )
        if record.status == "uploaded":
            raise invalid_request(
                f"File {file_id!r} is still being processed and is not ready to be used for fine-tuning. "
                "Please try again in a moment (client.files.wait_for_processing waits for it).",
                param=param,
                code="file_not_ready",
            )
        if record.status == "error":
            raise invalid_request(
                f"File {file_id!r} failed validation: {record.status_details}", param=param, code="invalid_file"
            )
        return record

    def create(self, project: str, request: CreateFineTuningJobRequest) -> JobRecord:
        start = self._starting_point(project, request)
        model = start.base
        training = self._usable_file(project, request.training_file, "training_file")
        if too_few := self._too_few(training):
            raise invalid_request(f"Training file {too_few}", param="training_file", code="invalid_n_examples")
        validation = None
        if request.validation_file is not None:
            validation = self._usable_file(project, request.validation_file, "validation_file")
        method_type, requested = parse_requested(request.hyperparameters, request.method, model.context_length)
        param = hyperparameters_param(method_type, top_level=bool(request.hyperparameters))
        if method_type not in model.methods:
            raise invalid_request(
                f"Model {model.id!r} supports {', '.join(model.methods)}, not {method_type!r}.", param="method.type"
            )
        for record, file_param in ((training, "training_file"), (validation, "validation_file")):
            if record is not None and record.data_format not in METHOD_FORMATS[method_type]:
                raise invalid_request(
                    f"File {record.id!r} is in the {record.data_format} format, but the {method_type} method "
                    f"trains on {METHOD_FORMATS_TEXT[method_type]}."
                    + (" Preference files train with method {\"type\": \"dpo\"}." if record.data_format == "preference"
                       else ""),
                    param=file_param,
                    code="invalid_training_file",
                )
        if validation is not None and validation.data_format != training.data_format:
            raise invalid_request(
                f"The validation file is in the {validation.data_format} format but the training file is in the "
                f"{training.data_format} format; both must share one format.",
                param="validation_file",
            )
        if start.parent is not None:
            self._continue_adapter_or_weights(start, requested, param)
        if "quantization" in requested and not self.workers.has_cuda():
            raise invalid_request(
                'QLoRA (quantization "nf4") needs a worker with a CUDA GPU, and this server has none '
                f"({self.workers.describe()}). Leave quantization out to train LoRA in full precision.",
                param=f"{param}.quantization",
                code="gpu_required",
            )
        if request.suffix is not None and not 1 <= len(request.suffix) <= MAX_SUFFIX_CHARS:
            raise invalid_request(f"suffix must be 1 to {MAX_SUFFIX_CHARS} characters long.", param="suffix")
        if request.suffix is not None and ":" in request.suffix:
            raise invalid_request("suffix cannot contain ':' (it is part of the model name).", param="suffix")
        if request.seed is not None and not 0 <= request.seed <= MAX_SEED:
            raise invalid_request(f"seed must be an integer from 0 to {MAX_SEED}.", param="seed")
        self._check_metadata(request.metadata)
        if request.integrations is not None and len(request.integrations) > 5:
            raise invalid_request("At most 5 integrations can be given.", param="integrations")
        now = int(time.time())
        job = JobRecord(
            id=new_id("ftjob-"),
            project=project,
            model=request.model,  # as the user named it: an alias stays an alias, as in OpenAI's echo
            base_model=model.id,
            parent_checkpoint=start.checkpoint.id if start.checkpoint else None,
            training_file=training.id,
            validation_file=validation.id if validation else None,
            status="queued",
            created_at=now,
            seed=request.seed if request.seed is not None else secrets.randbelow(MAX_SEED + 1),
            suffix=request.suffix,
            model_name_id=random_base62(8),
            method_type=method_type,
            hyperparameters=requested,
            metadata=request.metadata,
            integrations=msgspec.to_builtins(request.integrations or []),
        )
        with self.jobs.db.transaction():
            self.jobs.insert(job)
            self.jobs.add_event(job.id, f"Created fine-tuning job: {job.id}", data={})
            files_text = f"Validating training file: {training.id}" + (
                f" and validation file: {validation.id}" if validation else ""
            )
            self.jobs.add_event(job.id, files_text, data={})
            self.jobs.add_event(job.id, "Files validated, moving job to queued state", data={})
        self.queue.enqueue(job.id)
        return job

    def _starting_point(self, project: str, request: CreateFineTuningJobRequest) -> StartingPoint:
        if request.from_checkpoint is not None:
            self._check_from_checkpoint(request.from_checkpoint)
        base = self.registry.get(request.model)
        if base is not None:
            if request.from_checkpoint is not None:
                raise invalid_request(
                    f"from_checkpoint continues from a fine-tuned model, but {request.model!r} is a base model: name "
                    "a fine-tuned model or checkpoint (ft:…) in `model`, or leave from_checkpoint out.",
                    param="from_checkpoint",
                )
            return StartingPoint(base)
        checkpoint = self.jobs.model_checkpoint(project, request.model)
        parent = self.jobs.get(checkpoint.job_id) if checkpoint else None
        if checkpoint is None or parent is None:
            raise model_not_available(request.model, self.registry)
        base = self.registry.get(parent.base_model or parent.model)
        if base is None:
            raise invalid_request(
                f"{request.model} was trained on {parent.base_model}, which is no longer in this server's model "
                "registry, so it cannot be trained further.",
                param="model",
                code="model_not_available",
            )
        return StartingPoint(base, checkpoint, parent)

    @staticmethod
    def _check_from_checkpoint(from_checkpoint: dict[str, Any]) -> None:
        kind = from_checkpoint.get("type")
        if kind == "hf":
            raise invalid_request(
                "from_checkpoint of type 'hf' downloads from the Hugging Face hub, which GXFT never does: add the "
                "model to the model registry (GXFT_MODELS_FILE) and name it in `model`.",
                param="from_checkpoint.type",
            )
        if kind != "ft":
            raise invalid_request(
                "from_checkpoint must be {\"type\": \"ft\"}, with the fine-tuned model or checkpoint to continue "
                "from named in `model`.",
                param="from_checkpoint.type",
            )
        if unknown := sorted(set(from_checkpoint) - {"type"}):
            raise invalid_request(f"Unknown field from_checkpoint.{unknown[0]}.", param=f"from_checkpoint.{unknown[0]}")

    @staticmethod
    def _continue_adapter_or_weights(start: StartingPoint, requested: dict[str, Any], param: str) -> None:
        """A job continuing a LoRA adapter trains that adapter further (or merges it and trains every
        weight); one continuing full weights trains every weight, since an adapter on them could not be
        served on the base model."""
        assert start.checkpoint is not None and start.parent is not None and start.parent.resolved is not None
        parent = start.parent.resolved
        name = start.checkpoint.fine_tuned_model_checkpoint
        if not parent["lora"]:
            if requested.get("lora") is True or "quantization" in requested:
                raise invalid_request(
                    f"{name} is a fully fine-tuned model, so training continues on all its weights: "
                    'leave out "lora" and "quantization" or set "lora": false.',
                    param=f"{param}.lora",
                )
            requested["lora"] = False
            return
        if requested.get("lora", True) is False:
            return  # the adapter is merged into the base, then every weight trains
        for key in ("lora_r", "lora_alpha"):
            if key in requested and requested[key] != parent[key]:
                raise invalid_request(
                    f"{name} is a LoRA adapter with {key} {parent[key]}; continuing trains that same adapter, so "
                    f"{key} cannot change (leave it out).",
                    param=f"{param}.{key}",
                )
            requested[key] = parent[key]

    def _too_few(self, record: FileRecord) -> str | None:
        count = record.example_count or 0
        if count < self.settings.min_examples:
            return f"has {count} example(s), but must have at least {self.settings.min_examples} examples"
        return None

    @staticmethod
    def _check_metadata(metadata: dict[str, str] | None) -> None:
        if metadata is None:
            return
        if len(metadata) > 16:
            raise invalid_request("metadata can hold at most 16 keys.", param="metadata")
        for key, value in metadata.items():
            if len(key) > 64:
                raise invalid_request(f"metadata key {key[:20]!r}… is longer than 64 characters.", param="metadata")
            if len(value) > 512:
                raise invalid_request(f"metadata value of {key!r} is longer than 512 characters.", param="metadata")

    def cancel(self, job: JobRecord) -> JobRecord:
        if job.status in TERMINAL_STATUSES:
            raise invalid_request(f"Job {job.id} has already {job.status}; it cannot be cancelled.", param="id")
        with self.jobs.db.transaction():
            self.jobs.update(job.id, status="cancelled", estimated_finish=None, control=None)
            self.jobs.add_event(job.id, "The job was cancelled", data={})
        self._drop_training_state(job.id)
        return self.jobs.get(job.id)

    def pause(self, job: JobRecord) -> JobRecord:
        if job.status not in ("queued", "running"):
            raise invalid_request(f"Job {job.id} is {job.status}; only a queued or running job can be paused.", param="id")
        with self.jobs.db.transaction():
            # A running job keeps its worker until the worker has saved its pause checkpoint.
            self.jobs.update(
                job.id, status="paused", estimated_finish=None, control="pause" if job.status == "running" else None
            )
            self.jobs.add_event(job.id, "Pausing the job" if job.status == "running" else "The job was paused", data={})
        return self.jobs.get(job.id)

    def resume(self, job: JobRecord) -> JobRecord:
        if job.status != "paused":
            raise invalid_request(f"Job {job.id} is {job.status}; only a paused job can be resumed.", param="id")
        if job.worker_id is not None:
            raise invalid_request(
                f"Job {job.id} is still saving its pause checkpoint; resume it in a few seconds.", param="id"
            )
        with self.jobs.db.transaction():
            self.jobs.update(job.id, status="queued", control=None)
            self.jobs.add_event(job.id, "The job was resumed and is queued", data={})
        self.queue.enqueue(job.id)
        return self.jobs.get(job.id)

    # Worker actions

    def claim(self, job_id: str, worker_id: str) -> JobSpec | None:
        job = self.jobs.get(job_id)
        if job is None or job.status != "queued":
            return None
        model = self.registry.get(job.base_model or job.model)
        training = self.files.get(job.project, job.training_file)
        if training is None:
            self._fail_now(job, "invalid_training_file", "The training file is no longer available.", "training_file")
            return None
        if model is None:
            self._fail_now(job, "model_not_available",
                           f"The base model {job.base_model or job.model} is no longer available.", "model")
            return None
        starting_weights = None
        if job.parent_checkpoint is not None:
            starting_weights = self._starting_weights(job)
            if starting_weights is None:
                self._fail_now(job, "model_not_available",
                               f"The model {job.model} that this job continues from has been deleted.", "model")
                return None
        settings = resolve(job.method_type, job.hyperparameters, training.example_count or 0, model.learning_rate,
                           model.context_length)
        resume = self._resume_point(job.id)
        with self.jobs.db.transaction():
            self.jobs.update(
                job.id,
                status="running",
                worker_id=worker_id,
                lease_expires_at=time.time() + self.settings.lease_seconds,
                resolved=msgspec.to_builtins(settings),
            )
            if resume is None:
                self.jobs.add_event(job.id, "Fine-tuning job started", data=None)
            else:
                self.jobs.add_event(job.id, f"Fine-tuning job resumed from step {resume.step_number}", data=None)
        return JobSpec(
            job_id=job.id,
            method=job.method_type,  # type: ignore[arg-type]
            base_model=model.id,
            model_path=model.path,
            training_file=job.training_file,
            validation_file=job.validation_file,
            data_format=training.data_format or "chat",
            seed=job.seed,
            settings=settings,
            starting_weights=starting_weights,
            resume=resume,
            integrations=job.integrations,
        )

    def _starting_weights(self, job: JobRecord) -> StartingWeights | None:
        """The files of the checkpoint a job continues from; None once any of them has been deleted."""
        checkpoint = self.jobs.live_checkpoint(job.parent_checkpoint or "")
        if checkpoint is None:
            return None
        files = {}
        for file_id in checkpoint.result_files:
            record = self.files.get_live(file_id)
            if record is None:
                return None
            files[record.filename] = file_id
        return StartingWeights(model=job.model, files=files, adapter="adapter_config.json" in files)

    def _resume_point(self, job_id: str) -> ResumePoint | None:
        for checkpoint in self.jobs.live_checkpoints(job_id):
            if checkpoint.state_blob:
                return ResumePoint(
                    checkpoint_id=checkpoint.id, step_number=checkpoint.step_number, state_blob=checkpoint.state_blob
                )
        return None

    def owned_job(self, job_id: str, worker_id: str) -> JobRecord:
        job = self.jobs.get(job_id)
        if job is None or job.worker_id != worker_id:
            raise NotYours(job_id)
        return job

    def report(self, job_id: str, report: ProgressReport) -> Order:
        try:
            job = self.owned_job(job_id, report.worker_id)
        except NotYours:
            return "stop"
        with self.jobs.db.transaction():
            for event in report.events:
                self.jobs.add_event(
                    job.id, event.message, level=event.level, type=event.type, data=event.data,
                    created_at=event.created_at,
                )
            self.jobs.update(
                job.id,
                trained_steps=report.trained_steps,
                total_steps=report.total_steps,
                trained_tokens=report.trained_tokens,
                estimated_finish=report.estimated_finish if job.status == "running" else None,
                lease_expires_at=time.time() + self.settings.lease_seconds,
            )
        if job.status == "running":
            return "continue"
        if job.status == "paused":
            return "pause"
        if job.status == "cancelled":
            self.jobs.update(job.id, worker_id=None, lease_expires_at=None)
            return "cancel"
        return "stop"

    def _claim_scratch(self, job: JobRecord, kind: str, blob_id: str) -> None:
        if not blob_id.startswith(scratch_prefix(kind, job.id)) or not self.blobs.path(blob_id).is_file():
            raise invalid_request(f"{blob_id!r} is not a {kind} upload of job {job.id}.", param="result_files")

    def _adopt_results(self, job: JobRecord, staged: dict[str, str]) -> list[str]:
        """Staged uploads become the job's result files; call inside the transaction that records them."""
        for blob_id in staged.values():
            self._claim_scratch(job, "staged", blob_id)
        file_ids = []
        for filename, blob_id in staged.items():
            record = FileRecord(
                id=new_id("file-"), project=job.project, filename=clean_filename(filename),
                purpose="fine-tune-results", bytes=self.blobs.path(blob_id).stat().st_size,
                created_at=int(time.time()), status="processed",
            )
            # Renamed first: if the transaction then fails, the blob is an orphan removed at start-up.
            self.blobs.rename(blob_id, record.id)
            self.files.insert(record)
            file_ids.append(record.id)
        return file_ids

    def add_checkpoint(self, job_id: str, report: CheckpointReport) -> CheckpointRecord:
        job = self.owned_job(job_id, report.worker_id)
        # A retry after a lost answer (the server restarted): its staged files were adopted already.
        staged_gone = not any(self.blobs.path(blob_id).is_file() for blob_id in report.result_files.values())
        for existing in self.jobs.live_checkpoints(job.id):
            if existing.step_number == report.step_number and staged_gone:
                return existing
        if report.state_blob is not None:
            self._claim_scratch(job, "state", report.state_blob)
        name = self.fine_tuned_model_name(job, job.model_name_id) if report.final else (
            self.fine_tuned_model_name(job, random_base62(8)) + f":ckpt-step-{report.step_number}"
        )
        checkpoint = CheckpointRecord(
            id=new_id("ftckpt_"),
            job_id=job.id,
            created_at=int(time.time()),
            step_number=report.step_number,
            fine_tuned_model_checkpoint=name,
            metrics=report.metrics,
            result_files=[],
            state_blob=report.state_blob,
        )
        with self.jobs.db.transaction():
            checkpoint.result_files = self._adopt_results(job, report.result_files)
            self.jobs.add_checkpoint(checkpoint)
            self.jobs.add_event(job.id, f"Checkpoint created at step {report.step_number} with Snapshot ID: {name}",
                                data={})
            if report.paused:
                self.jobs.update(job.id, worker_id=None, lease_expires_at=None, control=None)
                self.jobs.add_event(job.id, f"The job was paused at step {report.step_number}", data={})
        self._prune_checkpoints(job.id)
        return checkpoint

    def _prune_checkpoints(self, job_id: str) -> None:
        live = self.jobs.live_checkpoints(job_id)
        for old in live[KEPT_CHECKPOINTS:]:
            self.delete_checkpoint(old)
        # Only the newest checkpoint's optimizer state is needed to resume.
        for older in live[1:]:
            if older.state_blob:
                self.blobs.delete(older.state_blob)

    def delete_checkpoint(self, checkpoint: CheckpointRecord) -> None:
        """The checkpoint, as a model too: its name stops resolving and its files are deleted."""
        self.jobs.mark_checkpoint_deleted(checkpoint.id)
        for file_id in checkpoint.result_files:
            self._delete_file(file_id)

    def _delete_file(self, file_id: str) -> None:
        record = self.files.get_live(file_id)
        if record and self.files.mark_deleted(record.project, file_id):
            self.blobs.delete(file_id)

    def _drop_training_state(self, job_id: str) -> None:
        """At the end of a job: its optimizer state, and any upload for a checkpoint never added."""
        for checkpoint in self.jobs.live_checkpoints(job_id):
            if checkpoint.state_blob:
                self.blobs.delete(checkpoint.state_blob)
        for kind in SCRATCH_KINDS:
            self.blobs.delete_prefix(scratch_prefix(kind, job_id))

    def complete(self, job_id: str, report: CompletionReport) -> JobRecord:
        job = self.owned_job(job_id, report.worker_id)
        name = self.fine_tuned_model_name(job, job.model_name_id)
        with self.jobs.db.transaction():
            self.jobs.update(
                job.id,
                status="succeeded",
                finished_at=int(time.time()),
                fine_tuned_model=name,
                trained_tokens=report.trained_tokens,
                result_files=self._adopt_results(job, report.result_files),
                estimated_finish=None,
                worker_id=None,
                lease_expires_at=None,
            )
            self.jobs.add_event(job.id, f"New fine-tuned model created: {name}", data={})
            self.jobs.add_event(job.id, "The job has successfully completed", data={})
        self._drop_training_state(job.id)
        return self.jobs.get(job.id)

    def fail(self, job_id: str, report: FailureReport) -> JobRecord:
        job = self.owned_job(job_id, report.worker_id)
        self._fail_now(job, report.code, report.message, report.param)
        return self.jobs.get(job.id)

    def _fail_now(self, job: JobRecord, code: str, message: str, param: str | None) -> None:
        with self.jobs.db.transaction():
            self.jobs.update(
                job.id,
                status="failed",
                error={"code": code, "message": message, "param": param},
                estimated_finish=None,
                worker_id=None,
                lease_expires_at=None,
            )
            self.jobs.add_event(job.id, f"The job failed: {message}", level="error", data={"code": code})
        self._drop_training_state(job.id)

    # Housekeeping

    def requeue_expired(self) -> None:
        now = time.time()
        for job in self.jobs.expired_leases(now):
            resume = self._resume_point(job.id)
            where = f"step {resume.step_number}" if resume else "the start"
            with self.jobs.db.transaction():
                self.jobs.update(job.id, status="queued", worker_id=None, lease_expires_at=None, estimated_finish=None)
                self.jobs.add_event(
                    job.id,
                    f"The worker running this job stopped reporting; the job is queued again and resumes from {where}",
                    level="warn",
                    data={},
                )
            log.warning("job %s lost its worker; queued again", job.id)
            self.queue.enqueue(job.id)
        # A worker that died while saving a pause checkpoint leaves the job paused at its last checkpoint.
        for job_id in self.jobs.paused_with_expired_lease(now):
            self.jobs.update(job_id, worker_id=None, lease_expires_at=None, control=None)

    def enqueue_waiting(self) -> None:
        """At start-up: queue entries may have been lost with a crash; claiming twice is harmless."""
        for job in self.jobs.queued():
            self.queue.enqueue(job.id)


def public_hyperparameters(job: JobRecord) -> dict[str, Any]:
    """As requested ("auto" included) until training starts, then the resolved numbers."""
    if job.resolved is None:
        return dict(job.hyperparameters)
    return dict(job.resolved)


def job_not_found(job_id: str) -> APIError:
    return APIError(404, f"No such fine-tuning job: {job_id}", param="fine_tuning_job_id", code="job_not_found")
