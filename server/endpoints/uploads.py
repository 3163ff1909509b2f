"""`/v1/uploads`: a file sent in parts (create, add a part, complete, cancel), as OpenAI's Uploads API."""

from starlette.requests import Request
from starlette.routing import Route

from server.decoding import decode_json
from server.files.multipart import receive_form
from server.openapi import operation
from server.presenters import part_object, upload_object
from server.protocol import (
    MAX_PART_BYTES,
    CompleteUploadRequest,
    CreateUploadRequest,
    Upload,
    UploadPart,
    UploadPartForm,
)
from server.responses import MsgspecResponse
from server.services import project, services


def _upload_id(request: Request) -> str:
    return request.path_params["upload_id"]


@operation("Create an upload", body=CreateUploadRequest, response=Upload)
async def create_upload(request: Request) -> MsgspecResponse:
    body = await decode_json(request, CreateUploadRequest)
    return MsgspecResponse(upload_object(services(request).uploads.create(project(request), body)))


@operation("Add a part to an upload", form=UploadPartForm, response=UploadPart, server_errors=(507,))
async def add_part(request: Request) -> MsgspecResponse:
    uploads = services(request).uploads
    upload = uploads.open(project(request), _upload_id(request))  # before the part streams in, not after
    with uploads.new_part() as writer:
        await receive_form(request, writer, MAX_PART_BYTES, "data", "a 'data' part")
        part = await uploads.add_part(upload, writer)
    return MsgspecResponse(part_object(part))


@operation("Complete an upload", body=CompleteUploadRequest, response=Upload, server_errors=(507,))
async def complete_upload(request: Request) -> MsgspecResponse:
    svc = services(request)
    body = await decode_json(request, CompleteUploadRequest)
    upload, file = await svc.uploads.complete(project(request), _upload_id(request), body)
    if file.status == "uploaded":
        svc.file_validator.submit(file)
    return MsgspecResponse(upload_object(upload, file))


@operation("Cancel an upload", response=Upload)
async def cancel_upload(request: Request) -> MsgspecResponse:
    return MsgspecResponse(upload_object(services(request).uploads.cancel(project(request), _upload_id(request))))


routes = [
    Route("/v1/uploads", create_upload, methods=["POST"]),
    Route("/v1/uploads/{upload_id}/parts", add_part, methods=["POST"]),
    Route("/v1/uploads/{upload_id}/complete", complete_upload, methods=["POST"]),
    Route("/v1/uploads/{upload_id}/cancel", cancel_upload, methods=["POST"]),
]
