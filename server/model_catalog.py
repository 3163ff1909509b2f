"""Every model a project can call: the registry's base models (and their aliases), the
checkpoints of its succeeded fine-tuning jobs, each checkpoint name being a model id, the
checkpoints other projects' have been shared with it, and its custom models (Nebius's `/v0/models`),
other names of its checkpoints.

A fine-tuned model is its base model plus the files of its checkpoint: a LoRA adapter, or full weights.
"""

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from contract.literals import WeightsKind
from server.base_models import BaseModel, BaseModelRegistry
from server.errors import APIError, model_not_found
from server.files.store import FileStore
from server.jobs.results import JobResults, local_name
from server.protocol import FineTuningSupport, Model
from server.worker_roster import WorkerRoster
from storage.custom_models import CustomModelRecord, CustomModelRepository
from storage.jobs import CheckpointRecord, JobRecord, JobRepository

SYSTEM_OWNER = "system"


@dataclass(frozen=True)
class FineTunedWeights:
    checkpoint_id: str  # identifies the weights, e.g. in the server's cache of loaded models
    kind: WeightsKind
    files: dict[str, Path]  # file name → blob holding it
    file_ids: tuple[str, ...]


@dataclass(frozen=True)
class ServedModel:
    name: str  # as the client called it
    base: BaseModel
    weights: FineTunedWeights | None  # None: the base model itself
    owned_by: str
    created: int
    parent: str | None = None  # what a fine-tuned model was trained from, as its job named it


class WeightsFolder:
    """A checkpoint's files under their own names, as `from_pretrained` expects: links to the blobs."""

    def __init__(self, name: str, weights: FineTunedWeights):
        self.name = name
        self.weights = weights

    def __enter__(self) -> str:
        self._temp = tempfile.TemporaryDirectory(prefix="gxft-model-")
        for filename, blob in self.weights.files.items():
            if not blob.exists():
                self._temp.cleanup()
                raise APIError(
                    409, f"A file of {self.name} ({filename}) has been deleted, so the model cannot be loaded.",
                    param="model", code="model_files_missing",
                )
            os.symlink(blob, Path(self._temp.name) / filename)
        return self._temp.name

    def __exit__(self, *exc) -> None:
        self._temp.cleanup()


class ModelCatalog:
    def __init__(self, registry: BaseModelRegistry, jobs: JobRepository, files: FileStore, results: JobResults,
                 workers: WorkerRoster, custom_models: CustomModelRepository):
        self.registry = registry
        self.jobs = jobs
        self.files = files
        self.results = results
        self.workers = workers
        self.custom_models = custom_models

    def list(self, project: str) -> list[Model]:
        models = [self.wire(self._base(name)) for name in self.registry.names()]
        for checkpoint in self.jobs.model_checkpoints(project):
            job = self.jobs.get(checkpoint.job_id)
            assert job is not None
            models.append(self._wire_checkpoint(checkpoint, job))
        for custom in self.custom_models.list(project):
            served = self._custom(custom)
            if served is not None:
                models.append(self.wire(served))
        return models

    def wire(self, served: ServedModel) -> Model:
        adapter_or_base = served.weights is None or served.weights.kind == "adapter"
        return Model(
            id=served.name, created=served.created, owned_by=served.owned_by, root=served.base.id,
            parent=served.parent, fine_tuning=self._support(served.base, adapter_or_base),
        )

    def _wire_checkpoint(self, checkpoint: CheckpointRecord, job: JobRecord) -> Model:
        """Without looking up its files: listing stays one query per checkpoint."""
        return Model(
            id=checkpoint.fine_tuned_model_checkpoint, created=checkpoint.created_at, owned_by=job.project,
            root=job.base_model, parent=job.model,
            fine_tuning=self._support(self.registry.get(job.base_model), checkpoint.weights == "adapter"),
        )

    def _support(self, base: BaseModel | None, adapter_or_base: bool) -> FineTuningSupport:
        # QLoRA loads the base in 4 bits under an adapter: not possible on fully fine-tuned weights.
        qlora = adapter_or_base and self.workers.has_cuda()
        return FineTuningSupport(methods=list(base.methods) if base else [], quantization=["nf4"] if qlora else [])

    def get(self, project: str, name: str) -> ServedModel:
        """A model the project may call: a base model, one of its own, or a checkpoint shared with it."""
        if self.registry.get(name) is not None:
            return self._base(name)
        checkpoint = self.jobs.model_checkpoint(project, name, shared=True)
        if checkpoint is not None:
            return self._fine_tuned(checkpoint)
        custom = self.custom_models.get(project, name)
        served = self._custom(custom) if custom is not None and custom.name == name else None
        if served is None:
            raise model_not_found(name, [model.id for model in self.list(project)])
        return served

    def _custom(self, custom: CustomModelRecord) -> ServedModel | None:
        """A custom model, served as its checkpoint under its own name; None once the checkpoint is deleted."""
        checkpoint = self.jobs.live_checkpoint(custom.checkpoint_id)
        if checkpoint is None:
            return None
        return dataclasses.replace(self._fine_tuned(checkpoint), name=custom.name,
                                   parent=checkpoint.fine_tuned_model_checkpoint)

    def get_own(self, project: str, name: str) -> ServedModel:
        """As `get`, but a shared checkpoint is refused: only its own project deletes or exports it."""
        served = self.get(project, name)
        if served.owned_by not in (project, SYSTEM_OWNER):
            raise APIError(403, f"{name} is shared with this project by {served.owned_by}, to be called and trained "
                           "from; only its own project can delete or export it.", type="permission_error",
                           param="model", code="model_shared")
        return served

    def delete(self, project: str, name: str) -> str | None:
        """Delete a fine-tuned model; answer its checkpoint id, so that the server can unload it (None for a
        custom model, whose checkpoint stays)."""
        if self.registry.get(name) is not None:
            raise APIError(
                403,
                f"{name!r} is a base model of this server and cannot be deleted; only fine-tuned models can. "
                "Base models are configured in the model registry file.",
                type="permission_error",
                param="model",
                code="model_not_deletable",
            )
        self.get_own(project, name)
        checkpoint = self.jobs.model_checkpoint(project, name)
        if checkpoint is None:  # get_own found it, so it is a custom model
            self.custom_models.delete(name)
            return None
        self.results.delete_checkpoint(checkpoint)
        return checkpoint.id

    def _base(self, name: str) -> ServedModel:
        model = self.registry.get(name)
        assert model is not None
        return ServedModel(name=name, base=model, weights=None, owned_by=SYSTEM_OWNER, created=model.created)

    def _fine_tuned(self, checkpoint: CheckpointRecord) -> ServedModel:
        job = self.jobs.get(checkpoint.job_id)
        assert job is not None
        base = self.registry.get(job.base_model)
        if base is None:
            raise APIError(
                409,
                f"{checkpoint.fine_tuned_model_checkpoint} was trained on {job.base_model}, which is no "
                "longer in this server's model registry.",
                param="model",
                code="base_model_unavailable",
            )
        files = {}
        for file_id in checkpoint.result_files:
            record = self.files.get_live(file_id)
            if record is not None:
                files[local_name(record.filename)] = self.files.content_path(file_id)
        weights = FineTunedWeights(
            checkpoint_id=checkpoint.id, kind=checkpoint.weights, files=files, file_ids=tuple(checkpoint.result_files),
        )
        return ServedModel(name=checkpoint.fine_tuned_model_checkpoint, base=base, weights=weights,
                           owned_by=job.project, created=checkpoint.created_at, parent=job.model)
