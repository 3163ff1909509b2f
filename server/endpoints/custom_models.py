"""`/v0/models`: Nebius's custom models. Deploy a fine-tuned checkpoint's LoRA adapter under a name, list,
retrieve and delete them. Full names hold a slash and a colon (`meta-llama/…-LoRa:name-AbCd`); the routes
take the rest of the path, and also answer to the short name after `-LoRa:`.
"""

from starlette.requests import Request
from starlette.routing import Route

from server.decoding import decode_json
from server.errors import APIError
from server.openapi import operation
from server.protocol import CreateCustomModelRequest, CustomModel
from server.responses import MsgspecResponse
from server.services import project, services


@operation("Create a custom model from a fine-tuned LoRA adapter", body=CreateCustomModelRequest,
           response=CustomModel)
async def create_custom_model(request: Request) -> MsgspecResponse:
    body = await decode_json(request, CreateCustomModelRequest)
    custom_models = services(request).custom_models
    return MsgspecResponse(custom_models.wire(custom_models.create(project(request), body)))


@operation("List custom models", response=list[CustomModel])
async def list_custom_models(request: Request) -> MsgspecResponse:
    custom_models = services(request).custom_models
    return MsgspecResponse([custom_models.wire(record) for record in custom_models.list(project(request))])


@operation("Retrieve a custom model", response=CustomModel)
async def retrieve_custom_model(request: Request) -> MsgspecResponse:
    custom_models = services(request).custom_models
    return MsgspecResponse(custom_models.wire(custom_models.get(project(request), request.path_params["name"])))


@operation("Delete a custom model (its checkpoint stays)", response=CustomModel)
async def delete_custom_model(request: Request) -> MsgspecResponse:
    custom_models = services(request).custom_models
    record = custom_models.delete(project(request), request.path_params["name"])
    return MsgspecResponse(custom_models.wire(record, deleted=True))


@operation("Upload an adapter archive (refused: see the message)")
async def upload_adapter_archive(request: Request) -> MsgspecResponse:
    raise APIError(
        404, "GXFT does not take adapter archives (Nebius's POST /v0/models/upload): deploy a checkpoint trained on "
        "this server, with source `<job id>:<checkpoint id>` in POST /v0/models.", code="unsupported_endpoint",
    )


routes = [
    Route("/v0/models", create_custom_model, methods=["POST"]),
    Route("/v0/models", list_custom_models, methods=["GET"]),
    Route("/v0/models/upload", upload_adapter_archive, methods=["POST"]),
    Route("/v0/models/{name:path}", retrieve_custom_model, methods=["GET"]),
    Route("/v0/models/{name:path}", delete_custom_model, methods=["DELETE"]),
]
