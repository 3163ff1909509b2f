"""`/internal`: the worker API. Workers claim jobs, fetch their files, report progress and results.

Only the worker token opens these routes (see server/auth.py); they are not part of `/v1`.
"""

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from server.endpoints.fine_tuning import checkpoint_object, job_object
from server.errors import APIError, insufficient_storage, invalid_request, is_out_of_space, not_found
from server.internal_protocol import (
    CheckpointReport, ClaimRequest, CompletionReport, FailureReport, ProgressReport, ReportReply, StoredBlob,
    WorkerHeartbeat,
)
from server.job_lifecycle import scratch_prefix
from server.requests import decode_json
from server.responses import MsgspecResponse
from server.services import services
from server.uploads import commit_upload, drain
from storage.blobs import BlobWriter
from storage.ids import new_id


async def worker_heartbeat(request: Request) -> Response:
    services(request).workers.heard(await decode_json(request, WorkerHeartbeat))
    return Response(status_code=204)


async def claim_job(request: Request) -> MsgspecResponse:
    body = await decode_json(request, ClaimRequest)
    spec = services(request).lifecycle.claim(request.path_params["job_id"], body.worker_id)
    if spec is None:
        raise APIError(409, "The job is not queued; skip it.", code="job_not_claimable")
    return MsgspecResponse(spec)


async def report_progress(request: Request) -> MsgspecResponse:
    body = await decode_json(request, ProgressReport)
    return MsgspecResponse(ReportReply(order=services(request).lifecycle.report(request.path_params["job_id"], body)))


async def _receive_raw(request: Request, writer: BlobWriter) -> None:
    stream = request.stream()
    try:
        async for chunk in stream:
            writer.write(chunk)
    except OSError as exc:
        writer.abort()
        if not is_out_of_space(exc):
            raise
        await drain(stream)
        raise insufficient_storage() from None
    except BaseException:
        writer.abort()
        raise
    await commit_upload(writer)


def _owned(request: Request):
    worker_id = request.query_params.get("worker_id", "")
    return services(request).lifecycle.owned_job(request.path_params["job_id"], worker_id)


async def _receive_blob(request: Request, kind: str) -> MsgspecResponse:
    """A result file or training state, kept under a job-scoped name until a checkpoint claims it
    (server/job_lifecycle.py), so a checkpoint that never completes leaves nothing behind."""
    job = _owned(request)
    blob_id = new_id(scratch_prefix(kind, job.id))
    writer = services(request).blobs.writer(blob_id)
    await _receive_raw(request, writer)
    return MsgspecResponse(StoredBlob(id=blob_id, bytes=writer.size))


async def upload_result_file(request: Request) -> MsgspecResponse:
    return await _receive_blob(request, "staged")


async def upload_state_blob(request: Request) -> MsgspecResponse:
    return await _receive_blob(request, "state")


async def add_checkpoint(request: Request) -> MsgspecResponse:
    body = await decode_json(request, CheckpointReport)
    checkpoint = services(request).lifecycle.add_checkpoint(request.path_params["job_id"], body)
    return MsgspecResponse(checkpoint_object(checkpoint))


async def complete_job(request: Request) -> MsgspecResponse:
    body = await decode_json(request, CompletionReport)
    job = services(request).lifecycle.complete(request.path_params["job_id"], body)
    return MsgspecResponse(job_object(job))


async def fail_job(request: Request) -> MsgspecResponse:
    body = await decode_json(request, FailureReport)
    job = services(request).lifecycle.fail(request.path_params["job_id"], body)
    return MsgspecResponse(job_object(job))


async def file_content(request: Request) -> FileResponse:
    file_id = request.path_params["file_id"]
    if services(request).files.get_live(file_id) is None:
        raise not_found("File", file_id)
    return FileResponse(services(request).blobs.path(file_id), media_type="application/octet-stream")


async def blob_content(request: Request) -> FileResponse:
    blob_id = request.path_params["blob_id"]
    if not blob_id.startswith("state-"):
        raise invalid_request("Only training-state blobs are served here.", param="blob_id")
    path = services(request).blobs.path(blob_id)
    if not path.exists():
        raise not_found("blob", blob_id)
    return FileResponse(path, media_type="application/octet-stream")


routes = [
    Route("/internal/workers/heartbeat", worker_heartbeat, methods=["POST"]),
    Route("/internal/jobs/{job_id}/claim", claim_job, methods=["POST"]),
    Route("/internal/jobs/{job_id}/report", report_progress, methods=["POST"]),
    Route("/internal/jobs/{job_id}/files", upload_result_file, methods=["POST"]),
    Route("/internal/jobs/{job_id}/blobs", upload_state_blob, methods=["POST"]),
    Route("/internal/jobs/{job_id}/checkpoints", add_checkpoint, methods=["POST"]),
    Route("/internal/jobs/{job_id}/complete", complete_job, methods=["POST"]),
    Route("/internal/jobs/{job_id}/fail", fail_job, methods=["POST"]),
    Route("/internal/files/{file_id}/content", file_content, methods=["GET"]),
    Route("/internal/blobs/{blob_id}", blob_content, methods=["GET"]),
]
