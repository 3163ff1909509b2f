"""Nebius's custom models (`/v0/models`): a fine-tuned checkpoint's LoRA adapter deployed under a name of
its own, `<base model>-LoRa:<name>-<4 characters>`, and served on `/v1/chat/completions` as any
fine-tuned model is (server/model_catalog.py resolves the name).

The source takes the forms Nebius documents: `<job id>:<checkpoint id>`, a fine-tuned model's name,
or a file id, here the id of one of a checkpoint's result files. A Hugging Face URL would mean a
download, which GXFT never makes, so it is refused with what to do instead. Every check is made while
the request is answered, so a model is `active` from its creation; it turns `error` if its
checkpoint is deleted later, with the reason in `status_reason`.
"""

import re
import time

from contract.ids import random_base62
from server.base_models import BaseModelRegistry
from server.errors import APIError, invalid_request
from server.files.store import FileStore
from server.protocol import CreateCustomModelRequest, CustomModel
from storage.custom_models import CustomModelRecord, CustomModelRepository
from storage.jobs import CheckpointRecord, JobRepository

SHORT_NAME = re.compile(r"[A-Za-z0-9._-]+")  # it becomes part of a model's name
CHECKPOINT_SOURCE = re.compile(r"(ftjob-[A-Za-z0-9]+):(ftckpt_[A-Za-z0-9]+)")
SOURCE_FORMS = ("`<job id>:<checkpoint id>` (ftjob-…:ftckpt_…), a fine-tuned model's name (ft:…) or the id of a "
                "checkpoint's result file (file-…)")


def custom_model_not_found(name: str) -> APIError:
    return APIError(404, f"No custom model is called {name!r}.", param="name", code="model_not_found")


class CustomModels:
    def __init__(self, records: CustomModelRepository, jobs: JobRepository, files: FileStore,
                 registry: BaseModelRegistry):
        self.records = records
        self.jobs = jobs
        self.files = files
        self.registry = registry

    def create(self, project: str, request: CreateCustomModelRequest) -> CustomModelRecord:
        if not SHORT_NAME.fullmatch(request.name):
            raise invalid_request("name must be letters, digits, '-', '_' and '.' (it becomes part of the model's "
                                  "name).", param="name")
        base = self.registry.get(request.base_model)
        if base is None:
            raise invalid_request(
                f"base_model {request.base_model!r} is not a model of this server. Available: "
                f"{', '.join(self.registry.names())}.", param="base_model", code="model_not_available",
            )
        checkpoint = self._checkpoint(project, request.source)
        job = self.jobs.get(checkpoint.job_id, project)
        if job is None:
            raise self._source_not_found(request.source)
        if job.status != "succeeded":
            raise invalid_request(f"Job {job.id} is {job.status}; its checkpoints deploy once it has succeeded.",
                                  param="source", code="job_not_succeeded")
        if checkpoint.weights != "adapter":
            raise invalid_request(
                f"{checkpoint.id} holds fully fine-tuned weights, and a custom model is a LoRA adapter on its base "
                f"model. Call the checkpoint by its own name: {checkpoint.fine_tuned_model_checkpoint}.",
                param="source", code="not_an_adapter",
            )
        if base.id != job.base_model:
            raise invalid_request(
                f"The source was trained on {job.base_model}, but base_model {request.base_model!r} is "
                f"{base.id}: an adapter serves on the model it was trained on.", param="base_model",
                code="base_model_mismatch",
            )
        record = CustomModelRecord(
            name=f"{request.base_model}-LoRa:{request.name}-{random_base62(4)}", project=project,
            base_model=request.base_model, source=request.source, description=request.description,
            checkpoint_id=checkpoint.id, job_id=job.id, created_at=int(time.time()),
        )
        self.records.insert(record)
        return record

    def _checkpoint(self, project: str, source: str) -> CheckpointRecord:
        if "huggingface.co" in source or source.startswith(("http://", "https://")):
            raise invalid_request(
                f"The source {source!r} is on the Hugging Face hub, and GXFT never downloads: deploy an adapter "
                f"trained here instead, as {SOURCE_FORMS}.", param="source", code="hub_source_unsupported",
            )
        checkpoint: CheckpointRecord | None = None
        if match := CHECKPOINT_SOURCE.fullmatch(source):
            job_id, checkpoint_id = match.groups()
            if self.jobs.get(job_id, project) is not None:
                checkpoint = self.jobs.get_checkpoint(job_id, checkpoint_id)
        elif source.startswith("ft:"):
            checkpoint = self.jobs.model_checkpoint(project, source)
        elif source.startswith("file-"):
            if self.files.get(project, source) is not None:
                checkpoint = self.jobs.checkpoint_with_file(source)
        else:
            raise invalid_request(f"The source {source!r} is none of {SOURCE_FORMS}.", param="source")
        if checkpoint is None:
            raise self._source_not_found(source)
        return checkpoint

    @staticmethod
    def _source_not_found(source: str) -> APIError:
        return invalid_request(f"No checkpoint of this project is {source!r}: give {SOURCE_FORMS}.",
                               param="source", code="source_not_found")

    def get(self, project: str, name: str) -> CustomModelRecord:
        record = self.records.get(project, name)
        if record is None:
            raise custom_model_not_found(name)
        return record

    def list(self, project: str) -> list[CustomModelRecord]:
        return self.records.list(project)

    def delete(self, project: str, name: str) -> CustomModelRecord:
        record = self.get(project, name)
        self.records.delete(record.name)
        return record

    def wire(self, record: CustomModelRecord, deleted: bool = False) -> CustomModel:
        base = self.registry.get(record.base_model)
        reason = None
        if not deleted and self.jobs.live_checkpoint(record.checkpoint_id) is None:
            reason = f"Its checkpoint {record.checkpoint_id} has been deleted."
        elif not deleted and base is None:
            reason = f"Its base model {record.base_model} is no longer in this server's model registry."
        return CustomModel(
            name=record.name, base_model=record.base_model, source=record.source, description=record.description,
            created_at=record.created_at, status="deleted" if deleted else "error" if reason else "active",
            status_reason=reason, checkpoint_id=record.checkpoint_id, job_id=record.job_id,
            file_id=record.source if record.source.startswith("file-") else None,
            context_window_k=(base.context_length // 1024) if base else 0,
        )
