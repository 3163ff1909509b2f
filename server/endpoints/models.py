"""`/v1/models`: list, retrieve and delete models, and export a fine-tuned model's weights as files.

Model ids hold colons (`ft:…`) and, for hub-style names, slashes; the routes take the rest of the path.
"""

import asyncio

from starlette.requests import Request
from starlette.routing import Route

from server.decoding import decode_json
from server.openapi import operation
from server.presenters import file_object
from server.protocol import DeletedObject, ExportModelRequest, Model, ModelExport, ModelList
from server.responses import MsgspecResponse
from server.services import project, services
from server.serving.export import export_format, merged_files


@operation("List models", response=ModelList)
async def list_models(request: Request) -> MsgspecResponse:
    return MsgspecResponse(ModelList(data=services(request).catalog.list(project(request))))


@operation("Retrieve a model", response=Model)
async def retrieve_model(request: Request) -> MsgspecResponse:
    catalog = services(request).catalog
    return MsgspecResponse(catalog.wire(catalog.get(project(request), request.path_params["model"])))


@operation("Delete a fine-tuned model", response=DeletedObject)
async def delete_model(request: Request) -> MsgspecResponse:
    svc = services(request)
    name = request.path_params["model"]
    if (checkpoint_id := svc.catalog.delete(project(request), name)) is not None:
        svc.engine.forget(checkpoint_id)
    return MsgspecResponse(DeletedObject(id=name, object="model", deleted=True))


@operation("Export a fine-tuned model's weights as files", body=ExportModelRequest, body_required=False,
           response=ModelExport, server_errors=(507,))
async def export_model(request: Request) -> MsgspecResponse:
    svc = services(request)
    body = await decode_json(request, ExportModelRequest, empty=ExportModelRequest())
    served = svc.catalog.get_own(project(request), request.path_params["model"])
    export = export_format(served, body.format)
    assert served.weights is not None  # export_format refuses base models
    if export == "merged" and served.weights.kind == "adapter":
        records = await asyncio.to_thread(merged_files, served, project(request), svc.files)
    else:  # the checkpoint's own files already are the export
        records = [record for file_id in served.weights.file_ids if (record := svc.files.get_live(file_id))]
    return MsgspecResponse(ModelExport(
        model=served.name, format=export, files=[file_object(record) for record in records],
    ))


routes = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model:path}/export", export_model, methods=["POST"]),
    Route("/v1/models/{model:path}", retrieve_model, methods=["GET"]),
    Route("/v1/models/{model:path}", delete_model, methods=["DELETE"]),
]
