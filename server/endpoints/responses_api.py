"""`/v1/responses`: OpenAI's Responses API on base and fine-tuned models, answered whole or streamed as typed
events; stored responses given back, deleted, their input items listed, and continued by `previous_response_id`."""

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response as HTTPResponse
from starlette.responses import StreamingResponse
from starlette.routing import Route

from server.answers import GatheredChoices, gather_whole, taken_on
from server.decoding import decode_json, decode_query
from server.errors import APIError, invalid_request
from server.metadata import checked_metadata
from server.openapi import operation
from server.protocol import DeletedObject, ListPage
from server.responses import MsgspecResponse
from server.responses_api.inputs import (
    chat_messages,
    chat_tool_choice,
    chat_tools,
    check_unsupported,
    input_items,
    sampling,
    text_format,
    top_logprobs,
)
from server.responses_api.lifecycle import ended, event_stream, started
from server.responses_api.output import ResponseOutput
from server.responses_api.protocol import (
    CreateResponseRequest,
    InputItemListQuery,
    Item,
    Response,
    RetrieveResponseQuery,
    StoredResponseInput,
)
from server.services import project, services
from server.serving.generation_request import GenerationRequest
from server.serving.params import chat_messages as template_messages
from server.serving.tool_calls import ToolCallParser, tool_use


def _response_id(request: Request) -> str:
    return request.path_params["response_id"]


@operation("Create a model response", body=CreateResponseRequest, response=Response, streams=True)
async def create_response(request: Request) -> HTTPResponse:
    svc = services(request)
    body = await decode_json(request, CreateResponseRequest)
    check_unsupported(body)
    params = sampling(body)
    logprobs = top_logprobs(body)
    metadata = checked_metadata(body.metadata) or {}
    items = input_items(body.input)
    if not items:
        raise invalid_request("Missing required parameter: 'input'.", param="input")
    context = (svc.stored_responses.conversation(project(request), body.previous_response_id)
               if body.previous_response_id else [])
    messages = chat_messages(body.instructions, [*context, *items])
    tools = tool_use(chat_tools(body.tools), chat_tool_choice(body.tool_choice), body.parallel_tool_calls)
    served = svc.catalog.get(project(request), body.model)
    generation = svc.engine.submit(GenerationRequest(
        project=project(request), served=served, prompts=[template_messages(messages)], n=1, params=params,
        chat=True, top_logprobs=logprobs, response_format=text_format(body.text, messages),
        tools=tools.tools if tools else None, tool_grammar=tools.grammar() if tools else None,
    ), stream=bool(body.stream))
    response = started(body, params, metadata)
    # With tool_choice "none" the model still reads the tools, and whatever it writes is text.
    output = ResponseOutput(ToolCallParser(tools.parallel) if tools and tools.choice != "none" else None)

    def end(outcome: GatheredChoices) -> Response:
        final = ended(response, outcome, output)
        if final.store:
            svc.stored_responses.store(project(request), final, StoredResponseInput(context=context, items=items))
        return final

    if not body.stream:
        outcome = await gather_whole(request, generation)
        if outcome is None:
            return HTTPResponse(status_code=499)  # nobody is there to read it
        output.take(outcome.texts[0], outcome.logprobs[0])
        output.finish(outcome.finish_reasons[0] == "length")
        return MsgspecResponse(end(outcome))

    events = await taken_on(generation)

    async def body_then_cancel() -> AsyncIterator[bytes]:
        try:
            async for chunk in event_stream(response, events, output, end):
                yield chunk
        finally:
            generation.cancel()  # a client that went away stops its generation

    return StreamingResponse(body_then_cancel(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache"})


@operation("Retrieve a stored model response", query=RetrieveResponseQuery, response=Response)
async def retrieve_response(request: Request) -> MsgspecResponse:
    query = decode_query(request, RetrieveResponseQuery)
    if query.stream:
        raise invalid_request("'stream' replays a background response's events at OpenAI; GXFT runs no background "
                              "responses, so a stored response is given back whole.", param="stream")
    return MsgspecResponse(services(request).stored_responses.get(project(request), _response_id(request)))


@operation("Delete a stored model response", response=DeletedObject)
async def delete_response(request: Request) -> MsgspecResponse:
    services(request).stored_responses.delete(project(request), _response_id(request))
    return MsgspecResponse(DeletedObject(id=_response_id(request), object="response", deleted=True))


@operation("Cancel a background response", response=Response)
async def cancel_response(request: Request) -> MsgspecResponse:
    services(request).stored_responses.get(project(request), _response_id(request))  # a 404 where there is none
    raise APIError(400, "Only responses created with 'background': true can be cancelled; GXFT runs none (close "
                        "the stream, or the request, to stop a response).", code="response_not_cancellable")


@operation("List a stored response's input items", query=InputItemListQuery, response=ListPage[Item])
async def list_input_items(request: Request) -> MsgspecResponse:
    query = decode_query(request, InputItemListQuery)
    return MsgspecResponse(services(request).stored_responses.input_items(project(request), _response_id(request),
                                                                          query))


routes = [
    Route("/v1/responses", create_response, methods=["POST"]),
    Route("/v1/responses/{response_id}", retrieve_response, methods=["GET"]),
    Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
    Route("/v1/responses/{response_id}/cancel", cancel_response, methods=["POST"]),
    Route("/v1/responses/{response_id}/input_items", list_input_items, methods=["GET"]),
]
