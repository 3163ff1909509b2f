"""`/internal`: the worker API. Workers register, claim jobs, fetch their files, report progress and results.

A worker registers with the worker token and from then on presents its own key (server/auth.py, which
puts the registered worker on the request); it reads and reports on the jobs it holds, nothing else.
These routes are not part of `/v1`.
"""

import anyio.to_thread
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from contract.internal_api import (
    CheckpointReport,
    CompletionReport,
    FailureReport,
    GraderEmbeddingAnswer,
    GraderEmbeddingRequest,
    GraderModelAnswer,
    GraderModelRequest,
    ProgressReport,
    ReportReply,
    StoredBlob,
    WorkerRegistration,
)
from grading.model_graders import ModelServerError
from server.decoding import decode_json
from server.errors import APIError, is_out_of_space, not_found
from server.files.multipart import drain, incomplete_upload, out_of_space
from server.files.store import commit_blob
from server.graders import EngineGraderModel
from server.jobs.results import ScratchKind
from server.presenters import job_object
from server.responses import MsgspecResponse, OpenFileResponse
from server.services import services
from storage.blobs import BlobWriter
from storage.workers import WorkerRecord


def _worker(request: Request) -> WorkerRecord:
    return request.state.worker


async def register_worker(request: Request) -> MsgspecResponse:
    registration = await decode_json(request, WorkerRegistration)
    return MsgspecResponse(services(request).workers.register(registration))


async def worker_heartbeat(request: Request) -> Response:
    services(request).workers.heard(_worker(request))
    return Response(status_code=204)


async def claim_job(request: Request) -> MsgspecResponse:
    spec = services(request).transitions.claim(request.path_params["job_id"], _worker(request).id)
    if spec is None:
        raise APIError(409, "The job is not queued; skip it.", code="job_not_claimable")
    return MsgspecResponse(spec)


async def report_progress(request: Request) -> MsgspecResponse:
    body = await decode_json(request, ProgressReport)
    order = services(request).transitions.report(request.path_params["job_id"], _worker(request).id, body)
    return MsgspecResponse(ReportReply(order=order))


async def renew_lease(request: Request) -> MsgspecResponse:
    order = services(request).transitions.renew_lease(request.path_params["job_id"], _worker(request).id)
    return MsgspecResponse(ReportReply(order=order))


async def _receive_raw(request: Request, writer: BlobWriter, max_bytes: int) -> None:
    stream = request.stream()
    try:
        async for chunk in stream:
            writer.write(chunk)
            if writer.size > max_bytes:
                writer.abort()
                await drain(stream)
                raise APIError(413, f"A worker's upload is larger than the limit of {max_bytes} bytes "
                               "(GXFT_MAX_RESULT_FILE_BYTES).", code="file_too_large")
    except ClientDisconnect:
        raise incomplete_upload("The worker closed the connection before the whole body arrived") from None
    except OSError as exc:
        if not is_out_of_space(exc):
            raise
        raise await out_of_space(writer, stream) from None
    await commit_blob(writer)


async def _receive_scratch(request: Request, kind: ScratchKind) -> MsgspecResponse:
    """A result file or training state, kept as scratch until a checkpoint claims it (server/jobs/results.py),
    so a checkpoint that never completes leaves nothing behind."""
    svc = services(request)
    job = svc.transitions.held_job(request.path_params["job_id"], _worker(request).id)
    with svc.results.scratch_writer(kind, job.id) as writer:
        await _receive_raw(request, writer, svc.settings.max_result_file_bytes)
    return MsgspecResponse(StoredBlob(id=writer.blob_id, bytes=writer.size))


async def upload_result_file(request: Request) -> MsgspecResponse:
    return await _receive_scratch(request, "staged")


async def upload_state_blob(request: Request) -> MsgspecResponse:
    return await _receive_scratch(request, "state")


async def add_checkpoint(request: Request) -> MsgspecResponse:
    body = await decode_json(request, CheckpointReport)
    order = services(request).transitions.add_checkpoint(request.path_params["job_id"], _worker(request).id, body)
    return MsgspecResponse(ReportReply(order=order))


async def complete_job(request: Request) -> MsgspecResponse:
    body = await decode_json(request, CompletionReport)
    job = services(request).transitions.complete(request.path_params["job_id"], _worker(request).id, body)
    return MsgspecResponse(job_object(job))


async def fail_job(request: Request) -> MsgspecResponse:
    body = await decode_json(request, FailureReport)
    job = services(request).transitions.fail(request.path_params["job_id"], _worker(request).id, body)
    return MsgspecResponse(job_object(job))


async def ask_grader_model(request: Request) -> MsgspecResponse:
    """A model grader's question from a worker training a reinforcement job, served as the job's project's."""
    body = await decode_json(request, GraderModelRequest)
    svc = services(request)
    job = svc.transitions.held_job(request.path_params["job_id"], _worker(request).id)
    try:
        answer = await EngineGraderModel(svc.catalog, svc.engine, job.project).answer(
            body.model, body.messages, body.json_schema, body.sampling)
    except ModelServerError as exc:
        raise APIError(422, str(exc), code="grader_model_failed") from None
    return MsgspecResponse(GraderModelAnswer(text=answer.text, prompt_tokens=answer.prompt_tokens,
                                             completion_tokens=answer.completion_tokens))


async def embed_for_grader(request: Request) -> MsgspecResponse:
    """A cosine grader's texts from a worker training a reinforcement job, embedded by the server's model."""
    body = await decode_json(request, GraderEmbeddingRequest)
    svc = services(request)
    svc.transitions.held_job(request.path_params["job_id"], _worker(request).id)
    try:
        vectors = await anyio.to_thread.run_sync(svc.embeddings.vectors, body.texts)
    except ModelServerError as exc:
        raise APIError(422, str(exc), code="grader_model_failed") from None
    return MsgspecResponse(GraderEmbeddingAnswer(vectors=vectors))


async def job_file_content(request: Request) -> OpenFileResponse:
    """A file the held job trains on: its training or validation file, or the model it continues."""
    svc = services(request)
    job = svc.transitions.held_job(request.path_params["job_id"], _worker(request).id)
    file_id = request.path_params["file_id"]
    wanted = file_id in svc.results.input_files(job) and svc.files.get_live(file_id) is not None  # not expired
    content = svc.files.open_content(file_id) if wanted else None
    if content is None:
        raise not_found("File", file_id)
    return OpenFileResponse(content, media_type="application/octet-stream")


async def job_state_content(request: Request) -> OpenFileResponse:
    """The training state the held job resumes from."""
    svc = services(request)
    job = svc.transitions.held_job(request.path_params["job_id"], _worker(request).id)
    blob_id = request.path_params["blob_id"]
    content = svc.results.open_state(job, blob_id)
    if content is None:
        raise not_found("training state", blob_id, param="blob_id")
    return OpenFileResponse(content, media_type="application/octet-stream")


routes = [
    Route("/internal/workers/register", register_worker, methods=["POST"]),
    Route("/internal/workers/heartbeat", worker_heartbeat, methods=["POST"]),
    Route("/internal/jobs/{job_id}/claim", claim_job, methods=["POST"]),
    Route("/internal/jobs/{job_id}/report", report_progress, methods=["POST"]),
    Route("/internal/jobs/{job_id}/lease", renew_lease, methods=["POST"]),
    Route("/internal/jobs/{job_id}/files", upload_result_file, methods=["POST"]),
    Route("/internal/jobs/{job_id}/blobs", upload_state_blob, methods=["POST"]),
    Route("/internal/jobs/{job_id}/checkpoints", add_checkpoint, methods=["POST"]),
    Route("/internal/jobs/{job_id}/complete", complete_job, methods=["POST"]),
    Route("/internal/jobs/{job_id}/fail", fail_job, methods=["POST"]),
    Route("/internal/jobs/{job_id}/grader_model", ask_grader_model, methods=["POST"]),
    Route("/internal/jobs/{job_id}/embeddings", embed_for_grader, methods=["POST"]),
    Route("/internal/jobs/{job_id}/files/{file_id}", job_file_content, methods=["GET"]),
    Route("/internal/jobs/{job_id}/state/{blob_id}", job_state_content, methods=["GET"]),
]
