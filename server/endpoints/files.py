"""`/v1/files`: upload, list, retrieve, delete and download files."""

import time

from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Route

from server.openapi import operation
from server.errors import invalid_request, not_found
from server.pagination import after_cursor, list_page
from server.protocol import (
    EXPIRY_SECONDS, UPLOAD_PURPOSES, DeletedObject, FileListQuery, FileObject, FileUploadForm, ListPage,
)
from server.requests import decode_query
from server.responses import MsgspecResponse
from server.services import project, services
from server.uploads import commit_upload, receive_upload
from storage.files import FileRecord
from storage.ids import new_id

def file_object(record: FileRecord) -> FileObject:
    return FileObject(
        id=record.id,
        bytes=record.bytes,
        created_at=record.created_at,
        filename=record.filename,
        purpose=record.purpose,  # type: ignore[arg-type]
        status=record.status,  # type: ignore[arg-type]
        status_details=record.status_details,
        expires_at=record.expires_at,
    )


def _expires_at(fields: dict[str, str], created_at: int) -> int | None:
    anchor = fields.get("expires_after[anchor]")
    seconds = fields.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise invalid_request("expires_after[anchor] must be 'created_at'.", param="expires_after[anchor]")
    low, high = EXPIRY_SECONDS
    if seconds is None or not seconds.isdigit() or not low <= int(seconds) <= high:
        raise invalid_request(
            f"expires_after[seconds] must be an integer from {low} to {high}.", param="expires_after[seconds]"
        )
    return created_at + int(seconds)


@operation("Upload a file", form=FileUploadForm, response=FileObject, server_errors=(507,))
async def create_file(request: Request) -> MsgspecResponse:
    svc = services(request)
    file_id = new_id("file-")
    upload = await receive_upload(request, svc.blobs, file_id, svc.settings.max_upload_bytes)
    writer = upload.writer
    try:
        purpose = upload.fields.get("purpose")
        if writer is None:
            raise invalid_request("Missing required parameter: 'file'.", param="file")
        if not purpose:
            raise invalid_request("Missing required parameter: 'purpose'.", param="purpose")
        if purpose not in UPLOAD_PURPOSES:
            raise invalid_request(
                f"Invalid value for 'purpose': {purpose!r}. Supported values are: {', '.join(UPLOAD_PURPOSES)}.",
                param="purpose",
            )
        filename = upload.filename or "upload"
        if purpose == "fine-tune" and not filename.lower().endswith(".jsonl"):
            raise invalid_request(
                f"Invalid file format for fine-tuning: {filename!r}. Fine-tuning files must be JSONL "
                "files with a .jsonl extension.",
                param="file",
            )
        created_at = int(time.time())
        expires_at = _expires_at(upload.fields, created_at)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    await commit_upload(writer)
    record = FileRecord(
        id=file_id,
        project=project(request),
        filename=filename,
        purpose=purpose,
        bytes=writer.size,
        created_at=created_at,
        expires_at=expires_at,
        status="uploaded" if purpose == "fine-tune" else "processed",
    )
    svc.files.insert(record)
    if purpose == "fine-tune":
        svc.file_processor.submit(record)
    return MsgspecResponse(file_object(record))


@operation("List files", query=FileListQuery, response=ListPage[FileObject])
async def list_files(request: Request) -> MsgspecResponse:
    svc = services(request)
    owner = project(request)
    query = decode_query(request, FileListQuery)
    after = after_cursor(query.after, lambda file_id: svc.files.cursor_seq(owner, file_id))
    records, has_more = svc.files.list_page(owner, query.purpose, after, query.limit, descending=query.order == "desc")
    return MsgspecResponse(list_page([file_object(r) for r in records], has_more, lambda f: f.id))


def _owned_file(request: Request) -> FileRecord:
    file_id = request.path_params["file_id"]
    record = services(request).files.get(project(request), file_id)
    if record is None:
        raise not_found("File", file_id)
    return record


@operation("Retrieve a file", response=FileObject)
async def retrieve_file(request: Request) -> MsgspecResponse:
    return MsgspecResponse(file_object(_owned_file(request)))


@operation("Delete a file", response=DeletedObject)
async def delete_file(request: Request) -> MsgspecResponse:
    record = _owned_file(request)
    svc = services(request)
    if svc.files.mark_deleted(record.project, record.id):
        svc.blobs.delete(record.id)
    return MsgspecResponse(DeletedObject(id=record.id, object="file", deleted=True))


@operation("Download a file's content", download=("application/octet-stream", "text/csv"))
async def file_content(request: Request) -> FileResponse:
    record = _owned_file(request)
    media_type = "text/csv" if record.filename.endswith(".csv") else "application/octet-stream"
    return FileResponse(services(request).blobs.path(record.id), media_type=media_type)


routes = [
    Route("/v1/files", create_file, methods=["POST"]),
    Route("/v1/files", list_files, methods=["GET"]),
    Route("/v1/files/{file_id}", retrieve_file, methods=["GET"]),
    Route("/v1/files/{file_id}", delete_file, methods=["DELETE"]),
    Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
]
