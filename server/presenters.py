"""Stored records as the public wire objects of `/v1`: files, uploads, jobs, their events and checkpoints."""


import msgspec

from server.protocol import (
    WRITE_ONLY_INTEGRATION_FIELDS,
    FileObject,
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    Integration,
    JobError,
    Upload,
    UploadPart,
)
from storage.files import FileRecord
from storage.jobs import CheckpointRecord, EventRecord, JobRecord
from storage.uploads import PartRecord, UploadRecord


def file_object(record: FileRecord) -> FileObject:
    return FileObject(
        id=record.id,
        bytes=record.bytes,
        created_at=record.created_at,
        filename=record.filename,
        purpose=record.purpose,
        status=record.status,
        status_details=record.status_details,
        expires_at=record.expires_at,
    )


def upload_object(record: UploadRecord, file: FileRecord | None = None) -> Upload:
    return Upload(
        id=record.id, bytes=record.bytes, created_at=record.created_at, filename=record.filename,
        purpose=record.purpose, status=record.status, expires_at=record.expires_at,
        file=file_object(file) if file is not None else None,
    )


def part_object(record: PartRecord) -> UploadPart:
    return UploadPart(id=record.id, created_at=record.created_at, upload_id=record.upload_id)


def job_object(job: JobRecord) -> FineTuningJob:
    # As requested ("auto" included) until training starts, then the resolved numbers.
    hyperparameters = job.hyperparameters if job.resolved is None else job.resolved
    return FineTuningJob(
        id=job.id,
        created_at=job.created_at,
        error=JobError(**job.error) if job.error else None,
        fine_tuned_model=job.fine_tuned_model,
        finished_at=job.finished_at,
        hyperparameters=hyperparameters,
        model=job.model,
        organization_id=f"org-{job.project}",
        result_files=job.result_files,
        seed=job.seed,
        status=job.status,
        trained_tokens=job.trained_tokens,
        training_file=job.training_file,
        validation_file=job.validation_file,
        estimated_finish=job.estimated_finish,
        # (Most jobs have none: the conversion is skipped on the polling path.)
        integrations=[answered_integration(entry) for entry in job.integrations],
        metadata=job.metadata,
        tags=job.tags,
        method={"type": job.method_type, job.method_type: {
            "hyperparameters": hyperparameters, **({"grader": job.grader} if job.grader is not None else {})}},
        user_provided_suffix=job.suffix,
        trained_steps=job.trained_steps,
        total_steps=job.total_steps,
        from_checkpoint=job.from_checkpoint or ({"type": "ft"} if job.parent_checkpoint else None),
    )


def answered_integration(entry: dict) -> Integration:
    """A stored integration without its write-only fields (keys, passwords, tokens)."""
    options = {key: value for key, value in entry[entry["type"]].items() if key not in WRITE_ONLY_INTEGRATION_FIELDS}
    return msgspec.convert({**entry, entry["type"]: options}, Integration)


def event_object(event: EventRecord) -> FineTuningJobEvent:
    return FineTuningJobEvent(
        id=event.id, created_at=event.created_at, level=event.level, message=event.message, type=event.type,
        data=event.data or {},  # an object always, as OpenAI's schema has it
    )


def checkpoint_object(checkpoint: CheckpointRecord) -> FineTuningJobCheckpoint:
    return FineTuningJobCheckpoint(
        id=checkpoint.id,
        created_at=checkpoint.created_at,
        fine_tuned_model_checkpoint=checkpoint.fine_tuned_model_checkpoint,
        fine_tuning_job_id=checkpoint.job_id,
        step_number=checkpoint.step_number,
        metrics=checkpoint.metrics,
        result_files=checkpoint.result_files,
    )
