"""Creating a fine-tuning job: every check a request must pass, then the job, its first events and its
queue entry. A request that fails a check is a 400 naming the field, and nothing is stored.

What is checked: the model (a base model of the registry, or a fine-tuned model or checkpoint of the
project to train further), the files (the project's, fine-tune purpose, validated, in a format the
method trains on, the training file large enough), the hyperparameters in either dialect, what a
continued model allows (its adapter's rank, or full weights), QLoRA's need of a GPU worker, and the
bookkeeping fields (suffix, seed, metadata, integrations).
"""

import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from contract.data_formats import METHOD_FORMATS, METHOD_FORMATS_TEXT, too_few_examples
from contract.graders import Grader
from contract.ids import new_id, random_base62
from contract.job_queue import JobQueue
from contract.literals import Method
from server.base_models import BaseModel, BaseModelRegistry
from server.config import Settings
from server.decoding import field_path
from server.errors import APIError, invalid_request, quota_exceeded
from server.files.store import FileStore
from server.graders import Graders
from server.hyperparameters import hyperparameters_param, parse_requested
from server.metadata import checked_metadata
from server.protocol import CreateFineTuningJobRequest, HfEntry
from server.worker_roster import WorkerRoster
from storage.files import FileRecord
from storage.jobs import CheckpointRecord, JobRecord, JobRepository

MAX_SUFFIX_CHARS = 64
SUFFIX = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_SUFFIX_CHARS}}}")  # OpenAI's characters: the name must route
MAX_SEED = 2_147_483_647
MAX_INTEGRATIONS = 5
MAX_TAGS = 20
MAX_TAG_CHARS = 64


@dataclass(frozen=True)
class StartingPoint:
    """What a new job trains: a base model, or a fine-tuned model (a checkpoint of an earlier job)."""

    base: BaseModel
    checkpoint: CheckpointRecord | None = None
    parent: JobRecord | None = None


def model_not_available(name: str, registry: BaseModelRegistry) -> APIError:
    return invalid_request(
        f"Model {name!r} is not available for fine-tuning or does not exist. Available models: "
        f"{', '.join(registry.names())}, or the name of one of your fine-tuned models or checkpoints (ft:…).",
        param="model",
        code="model_not_available",
    )


class JobAdmission:
    def __init__(self, settings: Settings, jobs: JobRepository, files: FileStore, registry: BaseModelRegistry,
                 workers: WorkerRoster, queue: JobQueue, graders: Graders):
        self.settings = settings
        self.graders = graders
        self.jobs = jobs
        self.files = files
        self.registry = registry
        self.workers = workers
        self.queue = queue

    def admit(self, project: str, request: CreateFineTuningJobRequest) -> JobRecord:
        start = self._starting_point(project, request)
        model = start.base
        training = self._usable_file(project, request.training_file, "training_file")
        if too_few := too_few_examples(training.example_count or 0, self.settings.min_examples):
            raise invalid_request(f"Training file {training.id!r} is too small: {too_few}.", param="training_file",
                                  code="invalid_n_examples")
        validation = None
        if request.validation_file is not None:
            validation = self._usable_file(project, request.validation_file, "validation_file")
        method_type, requested = parse_requested(request.hyperparameters, request.method, model.context_length,
                                                self.settings.dialect)
        param = hyperparameters_param(method_type, top_level=bool(request.hyperparameters))
        if method_type not in model.methods:
            raise invalid_request(
                f"Model {model.id!r} supports {', '.join(model.methods)}, not {method_type!r}.", param="method.type"
            )
        self._check_formats(method_type, training, validation)
        grader = self._reinforcement_grader(project, request.method) if method_type == "reinforcement" else None
        if start.parent is not None:
            self._continue_adapter_or_weights(start, requested, param)
        if "quantization" in requested and not self.workers.has_cuda():
            raise invalid_request(
                'QLoRA (quantization "nf4") needs a worker with a CUDA GPU, and this server has none '
                f"({self.workers.describe()}). Leave quantization out to train LoRA in full precision.",
                param=f"{param}.quantization",
                code="gpu_required",
            )
        self._check_bookkeeping(request)
        quota = self.settings.quota_active_jobs
        if quota and self.jobs.active_count(project) >= quota:
            raise quota_exceeded(f"The project has {quota} jobs that have not ended, its quota; wait for one to end "
                                 "(or cancel one), then create this job again.")
        job = JobRecord(
            id=new_id("ftjob-"),
            project=project,
            model=request.model,  # as the user named it: an alias stays an alias, as in OpenAI's echo
            base_model=model.id,
            parent_checkpoint=start.checkpoint.id if start.checkpoint else None,
            training_file=training.id,
            validation_file=validation.id if validation else None,
            status="queued",
            created_at=int(time.time()),
            seed=request.seed if request.seed is not None else secrets.randbelow(MAX_SEED + 1),
            suffix=request.suffix,
            model_name_id=random_base62(8),
            method_type=method_type,
            hyperparameters=requested,
            grader=msgspec.to_builtins(grader) if grader is not None else None,
            metadata=request.metadata,
            integrations=msgspec.to_builtins(request.integrations or []),
            tags=request.tags or [],
            # Nebius's hf source, echoed without its write-only token.
            from_checkpoint={k: v for k, v in request.from_checkpoint.items() if k != "token"}
            if request.from_checkpoint and request.from_checkpoint.get("type") == "hf" else None,
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

    def _reinforcement_grader(self, project: str, method: dict[str, Any] | None) -> Grader:
        """The grader that scores each sampled answer, checked as `/graders/validate` checks one."""
        param = "method.reinforcement.grader"
        body = (method or {}).get("reinforcement") or {}
        if body.get("grader") is None:
            raise invalid_request(
                "A reinforcement job needs method.reinforcement.grader, the grader that scores each answer the "
                "model samples (POST /v1/fine_tuning/alpha/graders/validate checks one).", param=param)
        try:
            grader = msgspec.convert(body["grader"], Grader)
        except msgspec.ValidationError as exc:
            where = field_path(exc)
            raise invalid_request(f"Invalid grader: {exc}", param=f"{param}.{where}" if where else param,
                                  code="invalid_grader") from None
        self.graders.check(project, grader, param)
        return grader

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

    @staticmethod
    def _check_formats(method_type: Method, training: FileRecord, validation: FileRecord | None) -> None:
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

    def _starting_point(self, project: str, request: CreateFineTuningJobRequest) -> StartingPoint:
        if request.from_checkpoint is not None and request.from_checkpoint.get("type") == "hf":
            return StartingPoint(self._hub_model(request.from_checkpoint))
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
        checkpoint = self.jobs.model_checkpoint(project, request.model, shared=True)
        parent = self.jobs.get(checkpoint.job_id) if checkpoint else None
        if checkpoint is None or parent is None:
            raise model_not_available(request.model, self.registry)
        base = self.registry.get(parent.base_model)
        if base is None:
            raise invalid_request(
                f"{request.model} was trained on {parent.base_model}, which is no longer in this server's model "
                "registry, so it cannot be trained further.",
                param="model",
                code="model_not_available",
            )
        return StartingPoint(base, checkpoint, parent)

    def _hub_model(self, from_checkpoint: dict[str, Any]) -> BaseModel:
        """Nebius's `{"type": "hf", "repo": …}`: the weights of a Hugging Face repository, which train here once
        they are a model of this server (`gxft models import` brings them from the machine's cache)."""
        if unknown := sorted(set(from_checkpoint) - {"type", "repo", "revision", "token"}):
            raise invalid_request(f"Unknown field from_checkpoint.{unknown[0]}.", param=f"from_checkpoint.{unknown[0]}")
        repo = from_checkpoint.get("repo")
        if not isinstance(repo, str) or not repo:
            raise invalid_request("from_checkpoint of type 'hf' needs `repo`, a Hugging Face repository id.",
                                  param="from_checkpoint.repo")
        model = self.registry.get(repo)
        if model is not None:
            return model
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = isinstance(try_to_load_from_cache(repo, "config.json"), str)
        except ValueError:  # not a repository id at all
            cached = False
        where = ("is in this machine's Hugging Face cache but is not a model of this server: `gxft models import "
                 f"{repo}` makes it one, from the cache") if cached else (
                 "is not on this machine, and GXFT never downloads while it serves: `gxft models import "
                 f"{repo}` on a machine that reaches the hub brings it")
        raise invalid_request(f"from_checkpoint.repo {repo!r} {where}; then this request trains it as sent.",
                              param="from_checkpoint.repo", code="model_not_available")

    @staticmethod
    def _check_from_checkpoint(from_checkpoint: dict[str, Any]) -> None:
        if from_checkpoint.get("type") != "ft":
            raise invalid_request(
                "from_checkpoint must be {\"type\": \"ft\"}, with the fine-tuned model or checkpoint to continue "
                "from named in `model`, or {\"type\": \"hf\", \"repo\": …}, a model of this server.",
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
        if start.checkpoint.weights == "full":
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

    @staticmethod
    def _check_bookkeeping(request: CreateFineTuningJobRequest) -> None:
        if request.suffix is not None and not SUFFIX.fullmatch(request.suffix):
            raise invalid_request(
                f"suffix must be 1 to {MAX_SUFFIX_CHARS} characters long, of letters, digits, '-', '_' and '.' "
                "(it becomes part of the model's name).", param="suffix",
            )
        if request.seed is not None and not 0 <= request.seed <= MAX_SEED:
            raise invalid_request(f"seed must be an integer from 0 to {MAX_SEED}.", param="seed")
        checked_metadata(request.metadata)
        if request.integrations is not None and len(request.integrations) > MAX_INTEGRATIONS:
            raise invalid_request(f"At most {MAX_INTEGRATIONS} integrations can be given.", param="integrations")
        for index, integration in enumerate(request.integrations or ()):
            if isinstance(integration, HfEntry):
                raise invalid_request(
                    "The hf integration exports the result to the Hugging Face hub, which GXFT never reaches: "
                    "download the checkpoint's result_files (GET /v1/files/{id}/content) and push them yourself.",
                    param=f"integrations[{index}].type", code="hub_unsupported",
                )
        if request.tags is not None:
            if len(request.tags) > MAX_TAGS:
                raise invalid_request(f"At most {MAX_TAGS} tags can be given.", param="tags")
            for tag in request.tags:
                if not 1 <= len(tag) <= MAX_TAG_CHARS:
                    raise invalid_request(f"Each tag must be 1 to {MAX_TAG_CHARS} characters long; {tag[:20]!r} "
                                          "is not.", param="tags")
