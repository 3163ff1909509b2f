"""`/v1/fine_tuning/jobs`: create, list, retrieve, cancel, pause and resume jobs; their events and checkpoints."""

from starlette.requests import Request
from starlette.routing import Route

from server.decoding import decode_json, decode_query
from server.errors import checkpoint_not_found, job_not_found
from server.openapi import operation
from server.pagination import after_cursor, list_page
from server.presenters import checkpoint_object, event_object, job_object
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
from server.services import project, services
from storage.jobs import JobRecord


def _project_job(request: Request) -> JobRecord:
    job_id = request.path_params["job_id"]
    job = services(request).jobs.get(job_id, project(request))
    if job is None:
        raise job_not_found(job_id)
    return job


@operation("Create a fine-tuning job", body=CreateFineTuningJobRequest, response=FineTuningJob)
async def create_job(request: Request) -> MsgspecResponse:
    body = await decode_json(request, CreateFineTuningJobRequest)
    job = services(request).admission.admit(project(request), body)
    return MsgspecResponse(job_object(job))


@operation("List fine-tuning jobs", query=JobListQuery, response=ListPage[FineTuningJob])
async def list_jobs(request: Request) -> MsgspecResponse:
    svc = services(request)
    owner = project(request)
    query = decode_query(request, JobListQuery)
    after = after_cursor(query.after, lambda job_id: svc.jobs.cursor_seq(owner, job_id))
    metadata = query.metadata if isinstance(query.metadata, dict) else {}
    jobs, has_more = svc.jobs.list_page(owner, metadata, query.metadata == "null", after, query.limit)
    return MsgspecResponse(list_page([job_object(job) for job in jobs], has_more, lambda j: j.id))


@operation("Retrieve a fine-tuning job", response=FineTuningJob)
async def retrieve_job(request: Request) -> MsgspecResponse:
    return MsgspecResponse(job_object(_project_job(request)))


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
    job = _project_job(request)
    svc = services(request)
    query = decode_query(request, EventListQuery)
    after = after_cursor(query.after, lambda event_id: svc.jobs.event_cursor_seq(job.id, event_id))
    events, has_more = svc.jobs.events_page(job.id, after, query.limit)
    return MsgspecResponse(list_page([event_object(e) for e in events], has_more, lambda e: e.id))


@operation("List a job's checkpoints", query=CheckpointListQuery, response=ListPage[FineTuningJobCheckpoint])
async def list_checkpoints(request: Request) -> MsgspecResponse:
    job = _project_job(request)
    svc = services(request)
    query = decode_query(request, CheckpointListQuery)
    after = after_cursor(query.after, lambda checkpoint_id: svc.jobs.checkpoint_cursor_seq(job.id, checkpoint_id))
    checkpoints, has_more = svc.jobs.checkpoints_page(job.id, after, query.limit)
    return MsgspecResponse(list_page([checkpoint_object(c) for c in checkpoints], has_more, lambda c: c.id))


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
