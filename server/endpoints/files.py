"""`/v1/files`: upload, list, retrieve, delete and download files."""

from starlette.requests import Request
from starlette.routing import Route

from server.decoding import decode_query
from server.errors import not_found
from server.files.multipart import receive_upload
from server.openapi import operation
from server.pagination import after_cursor, list_page
from server.presenters import file_object
from server.protocol import DeletedObject, FileListQuery, FileObject, FileUploadForm, ListPage
from server.responses import MsgspecResponse, OpenFileResponse
from server.services import project, services
from storage.files import FileRecord


@operation("Upload a file", form=FileUploadForm, response=FileObject, server_errors=(507,))
async def create_file(request: Request) -> MsgspecResponse:
    svc = services(request)
    with svc.files.new_upload() as writer:
        upload = await receive_upload(request, writer, svc.settings.max_upload_bytes)
        record = await svc.files.store_upload(project(request), writer, upload.filename, upload.fields)
    if record.status == "uploaded":
        svc.file_validator.submit(record)
    return MsgspecResponse(file_object(record))


@operation("List files", query=FileListQuery, response=ListPage[FileObject])
async def list_files(request: Request) -> MsgspecResponse:
    svc = services(request)
    owner = project(request)
    query = decode_query(request, FileListQuery)
    after = after_cursor(query.after, lambda file_id: svc.files.records.cursor_seq(owner, file_id))
    records, has_more = svc.files.records.list_page(owner, query.purpose, after, query.limit,
                                                    descending=query.order == "desc")
    return MsgspecResponse(list_page([file_object(r) for r in records], [r.id for r in records], has_more))


def _project_file(request: Request) -> FileRecord:
    file_id = request.path_params["file_id"]
    record = services(request).files.get(project(request), file_id)
    if record is None:
        raise not_found("File", file_id)
    return record


@operation("Retrieve a file", response=FileObject)
async def retrieve_file(request: Request) -> MsgspecResponse:
    return MsgspecResponse(file_object(_project_file(request)))


@operation("Delete a file", response=DeletedObject)
async def delete_file(request: Request) -> MsgspecResponse:
    record = _project_file(request)
    services(request).files.delete(record)
    return MsgspecResponse(DeletedObject(id=record.id, object="file", deleted=True))


@operation("Download a file's content", download=("application/octet-stream", "text/csv"))
async def file_content(request: Request) -> OpenFileResponse:
    record = _project_file(request)
    content = services(request).files.open_content(record.id)
    if content is None:  # deleted since its record was read
        raise not_found("File", record.id)
    return OpenFileResponse(content, media_type="text/csv" if record.filename.endswith(".csv")
                            else "application/octet-stream")


routes = [
    Route("/v1/files", create_file, methods=["POST"]),
    Route("/v1/files", list_files, methods=["GET"]),
    Route("/v1/files/{file_id}", retrieve_file, methods=["GET"]),
    Route("/v1/files/{file_id}", delete_file, methods=["DELETE"]),
    Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
]
