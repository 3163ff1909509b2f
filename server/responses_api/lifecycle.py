"""A response from its start to its end: the object as it starts (what the request asked, echoed as OpenAI echoes
it), as it ends (output, status, token counts), and the typed server-sent events that stream it between."""

import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from contract.ids import new_id
from server.answers import GatheredChoices
from server.responses_api.inputs import echoed_format
from server.responses_api.output import ResponseOutput
from server.responses_api.protocol import (
    CreateResponseRequest,
    ErrorEvent,
    IncompleteDetails,
    Response,
    ResponseError,
    ResponseEvent,
    ResponseUsage,
    StreamEvent,
    TextConfig,
)
from server.serving.generation_request import ChoiceDone, Event, Failed, Piece
from server.serving.params import SamplingParams

_encode = msgspec.json.Encoder().encode


def _echoed_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [{"type": "function", "name": tool["name"], "description": tool.get("description"),
             "parameters": tool.get("parameters"), "strict": tool.get("strict", True)} for tool in tools or ()]


def started(request: CreateResponseRequest, params: SamplingParams, metadata: dict[str, str]) -> Response:
    """The response as it starts: in progress, no output yet."""
    return Response(
        id=new_id("resp_"), created_at=int(time.time()), status="in_progress", instructions=request.instructions,
        max_output_tokens=request.max_output_tokens, model=request.model, output=[],
        parallel_tool_calls=request.parallel_tool_calls is not False,
        previous_response_id=request.previous_response_id, store=request.store is not False,
        temperature=params.temperature, text=TextConfig(format=echoed_format(request.text)),
        tool_choice=request.tool_choice or "auto", tools=_echoed_tools(request.tools),
        top_logprobs=request.top_logprobs or 0, top_p=params.top_p, truncation=request.truncation or "disabled",
        user=request.user, metadata=metadata,
    )


def ended(response: Response, outcome: GatheredChoices, output: ResponseOutput) -> Response:
    """`response`, completed (or incomplete, cut by max_output_tokens) with the output and the token counts."""
    incomplete = outcome.finish_reasons[0] == "length"
    response.status = "incomplete" if incomplete else "completed"
    response.incomplete_details = IncompleteDetails(reason="max_output_tokens") if incomplete else None
    response.completed_at = None if incomplete else int(time.time())
    response.output = output.output
    response.usage = ResponseUsage(input_tokens=outcome.prompt_tokens, output_tokens=outcome.completion_tokens,
                                   total_tokens=outcome.prompt_tokens + outcome.completion_tokens)
    return response


async def event_stream(response: Response, events: AsyncIterator[Event], output: ResponseOutput,
                       end: Callable[[GatheredChoices], Response]) -> AsyncIterator[bytes]:
    """The response's events as server-sent events, numbered from 0; `end` ends (and stores) the response."""
    sequence = itertools.count()

    def sse(event: StreamEvent) -> bytes:
        event.sequence_number = next(sequence)
        return b"event: " + event.type.encode() + b"\ndata: " + _encode(event) + b"\n\n"

    outcome = GatheredChoices(1)
    yield sse(ResponseEvent(type="response.created", response=response))
    yield sse(ResponseEvent(type="response.in_progress", response=response))
    async for event in events:
        if isinstance(event, Failed):  # after the 200 went out: the response fails in the stream
            detail = event.error.detail
            response.status = "failed"
            response.error = ResponseError(code=detail.code or "server_error", message=detail.message)
            yield sse(ErrorEvent(code=detail.code, message=detail.message, param=detail.param))
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
    final = end(outcome)
    yield sse(ResponseEvent(type="response.completed" if final.status == "completed" else "response.incomplete",
                            response=final))
