"""`/v1/chat/completions` (GET) and `/v1/chat/completions/{completion_id}[/messages]`: the chat completions made
with `store: true`, listed, given back, updated and deleted, as OpenAI's stored-completions endpoints."""

from starlette.requests import Request
from starlette.routing import Route

from server.completions_protocol import (
    StoredChatCompletion,
    StoredChatCompletionListQuery,
    StoredMessage,
    StoredMessageListQuery,
    UpdateStoredChatCompletionRequest,
)
from server.decoding import decode_json, decode_query
from server.openapi import operation
from server.protocol import DeletedObject, ListPage
from server.responses import MsgspecResponse
from server.services import project, services


def _completion_id(request: Request) -> str:
    return request.path_params["completion_id"]


@operation("List stored chat completions", query=StoredChatCompletionListQuery,
           response=ListPage[StoredChatCompletion])
async def list_completions(request: Request) -> MsgspecResponse:
    query = decode_query(request, StoredChatCompletionListQuery)
    return MsgspecResponse(services(request).stored_completions.page(project(request), query))


@operation("Retrieve a stored chat completion", response=StoredChatCompletion)
async def retrieve_completion(request: Request) -> MsgspecResponse:
    return MsgspecResponse(services(request).stored_completions.get(project(request), _completion_id(request)))


@operation("List a stored chat completion's request messages", query=StoredMessageListQuery,
           response=ListPage[StoredMessage])
async def list_messages(request: Request) -> MsgspecResponse:
    query = decode_query(request, StoredMessageListQuery)
    return MsgspecResponse(services(request).stored_completions.messages(project(request), _completion_id(request),
                                                                         query))


@operation("Update a stored chat completion's metadata", body=UpdateStoredChatCompletionRequest,
           response=StoredChatCompletion)
async def update_completion(request: Request) -> MsgspecResponse:
    body = await decode_json(request, UpdateStoredChatCompletionRequest)
    return MsgspecResponse(services(request).stored_completions.update(project(request), _completion_id(request),
                                                                       body.metadata))


@operation("Delete a stored chat completion", response=DeletedObject)
async def delete_completion(request: Request) -> MsgspecResponse:
    services(request).stored_completions.delete(project(request), _completion_id(request))
    return MsgspecResponse(DeletedObject(id=_completion_id(request), object="chat.completion.deleted", deleted=True))


routes = [
    Route("/v1/chat/completions", list_completions, methods=["GET"]),
    Route("/v1/chat/completions/{completion_id}", retrieve_completion, methods=["GET"]),
    Route("/v1/chat/completions/{completion_id}", update_completion, methods=["POST"]),
    Route("/v1/chat/completions/{completion_id}", delete_completion, methods=["DELETE"]),
    Route("/v1/chat/completions/{completion_id}/messages", list_messages, methods=["GET"]),
]
