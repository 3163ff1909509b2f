"""`/v1/fine_tuning/jobs`: create, list, retrieve, cancel, pause and resume jobs; their events and checkpoints.

Events and checkpoints are listed newest first, as OpenAI lists them, or oldest first on a server of
Nebius's dialect, as Nebius does (its sample takes `checkpoints[-1]` as the last one); `?order=` chooses.
"""

from typing import Literal

from starlette.requests import Request
from starlette.routing import Route

from server.decoding import decode_json, decode_query
from server.errors import checkpoint_not_found, job_not_found
from server.openapi import operation
from server.pagination import after_cursor, list_page
from server.presenters import checkpoint_object, job_object
from server.protocol import (
    CheckpointListQuery,
    CreateFineTuningJobRequest,
    EventListQuery,
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    JobListQuery,
    ListPage,
)
from server.responses import MsgspecResponse
from server.services import Services, project, services
from storage.jobs import JobRecord

NEBIUS_VALIDATION_WAIT_SECONDS = 60.0


def _project_job_version(request: Request, svc: Services) -> tuple[str, int]:
    """The project's job named in the path, as (id, row version), without reading the whole row."""
    job_id = request.path_params["job_id"]
    version = svc.jobs.version(job_id, project(request))
    if version is None:
        raise job_not_found(job_id)
    return job_id, version


def _oldest_first(svc: Services, order: Literal["asc", "desc"] | None) -> bool:
    return order == "asc" if order is not None else svc.settings.dialect == "nebius"


def _project_job(request: Request) -> JobRecord:
    job_id = request.path_params["job_id"]
    job = services(request).jobs.get(job_id, project(request))
    if job is None:
        raise job_not_found(job_id)
    return job


@operation("Create a fine-tuning job", body=CreateFineTuningJobRequest, response=FineTuningJob)
async def create_job(request: Request) -> MsgspecResponse:
    body = await decode_json(request, CreateFineTuningJobRequest)
    svc = services(request)
    if svc.settings.dialect == "nebius":  # its clients do not wait for the upload's validation
        named = [body.training_file, *([body.validation_file] if body.validation_file else [])]
        await svc.file_validator.settled(named, NEBIUS_VALIDATION_WAIT_SECONDS)
    job = svc.admission.admit(project(request), body)
    return MsgspecResponse(job_object(job))


@operation("List fine-tuning jobs", query=JobListQuery, response=ListPage[FineTuningJob])
async def list_jobs(request: Request) -> MsgspecResponse:
    svc = services(request)
    owner = project(request)
    query = decode_query(request, JobListQuery)
    after = after_cursor(query.after, lambda job_id: svc.jobs.cursor_seq(owner, job_id))
    metadata = query.metadata if isinstance(query.metadata, dict) else {}
    keys, has_more = svc.jobs.list_page(owner, metadata, query.metadata == "null", after, query.limit)
    return MsgspecResponse(list_page(svc.wire_cache.jobs_json(keys), [job_id for job_id, _ in keys], has_more))


@operation("Retrieve a fine-tuning job", response=FineTuningJob)
async def retrieve_job(request: Request) -> MsgspecResponse:
    svc = services(request)
    (answer,) = svc.wire_cache.jobs_json([_project_job_version(request, svc)])
    return MsgspecResponse(answer)


@operation("Cancel a fine-tuning job", response=FineTuningJob)
async def cancel_job(request: Request) -> MsgspecResponse:
    return MsgspecResponse(job_object(services(request).transitions.cancel(_project_job(request))))


@operation("Pause a running fine-tuning job at its next step", response=FineTuningJob)
async def pause_job(request: Request) -> MsgspecResponse:
    return MsgspecResponse(job_object(services(request).transitions.pause(_project_job(request))))


@operation("Resume a paused fine-tuning job", response=FineTuningJob)
async def resume_job(request: Request) -> MsgspecResponse:
    return MsgspecResponse(job_object(services(request).transitions.resume(_project_job(request))))


@operation("List a job's events", query=EventListQuery, response=ListPage[FineTuningJobEvent])
async def list_events(request: Request) -> MsgspecResponse:
    svc = services(request)
    job_id, _ = _project_job_version(request, svc)
    query = decode_query(request, EventListQuery)
    after = after_cursor(query.after, lambda event_id: svc.jobs.event_cursor_seq(job_id, event_id))
    event_ids, has_more = svc.jobs.events_page(job_id, after, query.limit, _oldest_first(svc, query.order))
    return MsgspecResponse(list_page(svc.wire_cache.events_json(event_ids), event_ids, has_more))


@operation("List a job's checkpoints", query=CheckpointListQuery, response=ListPage[FineTuningJobCheckpoint])
async def list_checkpoints(request: Request) -> MsgspecResponse:
    job = _project_job(request)
    svc = services(request)
    query = decode_query(request, CheckpointListQuery)
    after = after_cursor(query.after, lambda checkpoint_id: svc.jobs.checkpoint_cursor_seq(job.id, checkpoint_id))
    limit = query.limit or (100 if svc.settings.dialect == "nebius" else 10)
    checkpoints, has_more = svc.jobs.checkpoints_page(job.id, after, limit, _oldest_first(svc, query.order))
    return MsgspecResponse(list_page([checkpoint_object(c) for c in checkpoints], [c.id for c in checkpoints],
                                     has_more))


@operation("Retrieve a checkpoint", response=FineTuningJobCheckpoint)
async def retrieve_checkpoint(request: Request) -> MsgspecResponse:
    job = _project_job(request)
    checkpoint_id = request.path_params["checkpoint_id"]
    checkpoint = services(request).jobs.get_checkpoint(job.id, checkpoint_id)
    if checkpoint is None:
        raise checkpoint_not_found(checkpoint_id)
    return MsgspecResponse(checkpoint_object(checkpoint))


routes = [
    Route("/v1/fine_tuning/jobs", create_job, methods=["POST"]),
    Route("/v1/fine_tuning/jobs", list_jobs, methods=["GET"]),
    Route("/v1/fine_tuning/jobs/{job_id}", retrieve_job, methods=["GET"]),
    Route("/v1/fine_tuning/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
    Route("/v1/fine_tuning/jobs/{job_id}/pause", pause_job, methods=["POST"]),
    Route("/v1/fine_tuning/jobs/{job_id}/resume", resume_job, methods=["POST"]),
    Route("/v1/fine_tuning/jobs/{job_id}/events", list_events, methods=["GET"]),
    Route("/v1/fine_tuning/jobs/{job_id}/checkpoints", list_checkpoints, methods=["GET"]),
    Route("/v1/fine_tuning/jobs/{job_id}/checkpoints/{checkpoint_id}", retrieve_checkpoint, methods=["GET"]),
]
