"""What a worker receives when it claims a job: everything it needs to train, as a `JobSpec`.

It is built at the claim, not at create: the hyperparameters resolve against the training file's
example count and the base model's learning rates, and a resumed job gets the training state of its
last checkpoint. A job that can no longer train (its training or validation file deleted, its base model gone from
the registry, the model it continues deleted) is refused with the reason, and then fails.
"""

import msgspec

from contract.graders import Grader
from contract.internal_api import JobSpec
from server.base_models import BaseModelRegistry
from server.files.store import FileStore
from server.hyperparameters import resolve
from server.jobs.results import JobResults
from storage.jobs import JobRecord


class CannotTrain(Exception):
    def __init__(self, code: str, message: str, param: str):
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


def job_spec(job: JobRecord, registry: BaseModelRegistry, files: FileStore, results: JobResults) -> JobSpec:
    training = files.get(job.project, job.training_file)
    if training is None:
        raise CannotTrain("invalid_training_file", "The training file is no longer available.", "training_file")
    if job.validation_file is not None and files.get(job.project, job.validation_file) is None:
        raise CannotTrain("invalid_validation_file", "The validation file is no longer available.",
                          "validation_file")
    model = registry.get(job.base_model)
    if model is None:
        raise CannotTrain("model_not_available", f"The base model {job.base_model} is no longer available.", "model")
    starting_weights = None
    if job.parent_checkpoint is not None:
        starting_weights = results.starting_weights(job)
        if starting_weights is None:
            raise CannotTrain("model_not_available",
                              f"The model {job.model} that this job continues from has been deleted.", "model")
    settings = resolve(job.method_type, job.hyperparameters, training.example_count or 0, model.learning_rate,
                       model.context_length)
    return JobSpec(
        job_id=job.id,
        method=job.method_type,
        base_model=model.id,
        model_path=model.path,
        model_gguf=model.gguf,
        training_file=job.training_file,
        validation_file=job.validation_file,
        data_format=training.data_format or "chat",
        seed=job.seed,
        settings=settings,
        starting_weights=starting_weights,
        resume=results.resume_point(job.id),
        integrations=job.integrations,
        grader=msgspec.convert(job.grader, Grader) if job.grader is not None else None,
    )
