"""`/v1/responses`: OpenAI's Responses API on base and fine-tuned models, answered whole or streamed as typed
events; stored responses given back, deleted, their input items listed, and continued by `previous_response_id`."""

import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response as HTTPResponse
from starlette.responses import StreamingResponse
from starlette.routing import Route

from contract.ids import new_id
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
    echoed_format,
    input_items,
    sampling,
    text_format,
    top_logprobs,
)
from server.responses_api.output import ResponseOutput
from server.responses_api.protocol import (
    CreateResponseRequest,
    ErrorEvent,
    IncompleteDetails,
    InputItemListQuery,
    Item,
    Response,
    ResponseError,
    ResponseEvent,
    ResponseUsage,
    RetrieveResponseQuery,
    StoredResponseInput,
    StreamEvent,
    TextConfig,
)
from server.services import project, services
from server.serving.generation_request import ChoiceDone, Failed, GenerationRequest, Piece
from server.serving.params import chat_messages as template_messages
from server.serving.tool_calls import ToolCallParser, tool_use

_encode = msgspec.json.Encoder().encode


def _response_id(request: Request) -> str:
    return request.path_params["response_id"]


def _echoed_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [{"type": "function", "name": tool["name"], "description": tool.get("description"),
             "parameters": tool.get("parameters"), "strict": tool.get("strict", True)} for tool in tools or ()]


def _ended(response: Response, outcome: GatheredChoices, output: ResponseOutput) -> Response:
    """`response`, completed (or incomplete, cut by max_output_tokens) with the output and the token counts."""
    incomplete = outcome.finish_reasons[0] == "length"
    response.status = "incomplete" if incomplete else "completed"
    response.incomplete_details = IncompleteDetails(reason="max_output_tokens") if incomplete else None
    response.completed_at = None if incomplete else int(time.time())
    response.output = output.output
    response.usage = ResponseUsage(input_tokens=outcome.prompt_tokens, output_tokens=outcome.completion_tokens,
                                   total_tokens=outcome.prompt_tokens + outcome.completion_tokens)
    return response


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
    store = body.store is not False
    response = Response(
        id=new_id("resp_"), created_at=int(time.time()), status="in_progress", instructions=body.instructions,
        max_output_tokens=body.max_output_tokens, model=body.model, output=[],
        parallel_tool_calls=body.parallel_tool_calls is not False, previous_response_id=body.previous_response_id,
        store=store, temperature=params.temperature, text=TextConfig(format=echoed_format(body.text)),
        tool_choice=body.tool_choice or "auto", tools=_echoed_tools(body.tools), top_logprobs=body.top_logprobs or 0,
        top_p=params.top_p, truncation=body.truncation or "disabled", user=body.user, metadata=metadata,
    )
    # With tool_choice "none" the model still reads the tools, and whatever it writes is text.
    output = ResponseOutput(ToolCallParser(tools.parallel) if tools and tools.choice != "none" else None)

    def end(outcome: GatheredChoices) -> Response:
        ended = _ended(response, outcome, output)
        if store:
            svc.stored_responses.store(project(request), ended, StoredResponseInput(context=context, items=items))
        return ended

    if not body.stream:
        outcome = await gather_whole(request, generation)
        if outcome is None:
            return HTTPResponse(status_code=499)  # nobody is there to read it
        output.take(outcome.texts[0], outcome.logprobs[0])
        output.finish(outcome.finish_reasons[0] == "length")
        return MsgspecResponse(end(outcome))

    events = await taken_on(generation)
    sequence = itertools.count()

    def sse(event: StreamEvent) -> bytes:
        event.sequence_number = next(sequence)
        return b"event: " + event.type.encode() + b"\ndata: " + _encode(event) + b"\n\n"

    async def stream() -> AsyncIterator[bytes]:
        outcome = GatheredChoices(1)
        try:
            yield sse(ResponseEvent(type="response.created", response=response))
            yield sse(ResponseEvent(type="response.in_progress", response=response))
            async for event in events:
                if isinstance(event, Failed):  # after the 200 went out: the response fails in the stream
                    response.status = "failed"
                    response.error = ResponseError(code=event.error.detail.code or "server_error",
                                                   message=event.error.detail.message)
                    yield sse(ErrorEvent(code=event.error.detail.code, message=event.error.detail.message,
                                         param=event.error.detail.param))
                    yield sse(ResponseEvent(type="response.failed", response=response))
                    return
                outcome.take(event)
                made: list[StreamEvent] = []
                if isinstance(event, Piece):
                    made = output.take(event.text, event.logprobs)
                elif isinstance(event, ChoiceDone):
                    made = output.finish(event.finish_reason == "length")
                for item_event in made:
                    yield sse(item_event)
            ended = end(outcome)
            yield sse(ResponseEvent(type="response.completed" if ended.status == "completed" else "response.incomplete",
                                    response=ended))
        finally:
            generation.cancel()  # a client that went away stops its generation

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


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
