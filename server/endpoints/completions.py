"""`/v1/chat/completions` and `/v1/completions`: generation with base and fine-tuned models,
answered whole or streamed as server-sent events."""

import time
from collections.abc import AsyncIterator, Callable

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from contract.ids import new_id
from server.answers import GatheredChoices, gather_whole, taken_on
from server.completions_protocol import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    ChatLogprobs,
    ChatTokenLogprob,
    Completion,
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    FinishReason,
    FunctionCall,
    StoredChatInput,
    StreamOptions,
    ToolCall,
    ToolCallDelta,
    TopLogprob,
    Usage,
)
from server.decoding import decode_json
from server.errors import invalid_request
from server.metadata import checked_metadata
from server.openapi import operation
from server.responses import MsgspecResponse
from server.services import project, services
from server.serving.fingerprint import SYSTEM_FINGERPRINT
from server.serving.generation_request import (
    ChoiceDone,
    Event,
    Failed,
    Generation,
    GenerationRequest,
    Piece,
    Started,
    TokenLogprob,
)
from server.serving.params import (
    chat_messages,
    chat_sampling,
    chat_top_logprobs,
    check_rows,
    choice_count,
    completion_prompts,
    completion_sampling,
    completion_top_logprobs,
    response_format,
)
from server.serving.tool_calls import ParsedCall, ToolCallParser, tool_use

_encode = msgspec.json.Encoder().encode


def _chat_logprobs(logprobs: list[TokenLogprob]) -> ChatLogprobs:
    return ChatLogprobs(content=[
        ChatTokenLogprob(token=entry.token, logprob=entry.logprob, bytes=list(entry.token.encode()),
                         top_logprobs=[TopLogprob(token=token, logprob=logprob, bytes=list(token.encode()))
                                       for token, logprob in entry.top])
        for entry in logprobs
    ])


def _completion_logprobs(logprobs: list[TokenLogprob], text_offset: int) -> CompletionLogprobs:
    """`text_offset`: where in the choice's text the first of these tokens starts."""
    offsets = []
    for entry in logprobs:
        offsets.append(text_offset)
        text_offset += len(entry.token)
    return CompletionLogprobs(tokens=[entry.token for entry in logprobs],
                              token_logprobs=[entry.logprob for entry in logprobs],
                              top_logprobs=[dict(entry.top) for entry in logprobs], text_offset=offsets)


def _tool_call(call: ParsedCall) -> ToolCall:
    return ToolCall(id=call.id, function=FunctionCall(name=call.name, arguments=call.arguments))


def _finish_reason(generated: FinishReason, calls: list[ParsedCall]) -> FinishReason:
    """"tool_calls" where the answer ended on its calls, as OpenAI says it."""
    return "tool_calls" if calls and generated == "stop" else generated


def _include_usage(stream: bool | None, options: StreamOptions | None) -> bool:
    if options is not None and not stream:
        raise invalid_request("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                              param="stream_options")
    return bool(options and options.include_usage)


def _data(payload: object) -> bytes:
    return b"data: " + _encode(payload) + b"\n\n"


def _event_stream(generation: Generation, events: AsyncIterator[Event], chunks: Callable[[Event], list],
                  usage_chunk: Callable[[Usage], object] | None,
                  finished: Callable[[GatheredChoices], None] | None = None) -> StreamingResponse:
    """`finished` is given the whole answer once it has all been sent."""

    async def body() -> AsyncIterator[bytes]:
        outcome = GatheredChoices(generation.choices)
        try:
            async for event in events:
                if isinstance(event, Failed):  # after the 200 went out: OpenAI's in-stream error
                    yield _data({"error": event.error.detail})
                    return
                outcome.take(event)
                for chunk in chunks(event):
                    yield _data(chunk)
            if usage_chunk is not None:
                yield _data(usage_chunk(outcome.usage))
            if finished is not None:
                finished(outcome)
            yield b"data: [DONE]\n\n"
        finally:
            generation.cancel()  # a client that went away stops its generation

    return StreamingResponse(body(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


def _chat_choice(outcome: GatheredChoices, index: int, parser: ToolCallParser | None,
                 with_logprobs: bool) -> ChatChoice:
    """A whole choice; `parser` has read all of its text, where the request has tools."""
    calls = parser.calls if parser else []
    text = parser.content if parser else outcome.texts[index]
    return ChatChoice(
        index=index, finish_reason=_finish_reason(outcome.finish_reasons[index], calls),
        message=AssistantMessage(content=(text.strip() or None) if calls else text,
                                 tool_calls=[_tool_call(call) for call in calls] or msgspec.UNSET),
        logprobs=_chat_logprobs(outcome.logprobs[index]) if with_logprobs else None,
    )


@operation("Chat with a base or fine-tuned model", body=ChatCompletionRequest, response=ChatCompletion, streams=True)
async def chat_completions(request: Request) -> Response:
    svc = services(request)
    body = await decode_json(request, ChatCompletionRequest)
    params = chat_sampling(body)
    top_logprobs = chat_top_logprobs(body)
    include_usage = _include_usage(body.stream, body.stream_options)
    n = choice_count(body.n)
    check_rows(1, n, svc.settings.max_request_rows)
    tools = tool_use(body.tools, body.tool_choice, body.parallel_tool_calls)
    metadata = checked_metadata(body.metadata)
    served = svc.catalog.get(project(request), body.model)
    generation = svc.engine.submit(GenerationRequest(
        project=project(request), served=served, prompts=[chat_messages(body.messages)], n=n, params=params,
        chat=True, top_logprobs=top_logprobs, response_format=response_format(body),
        tools=tools.tools if tools else None, tool_grammar=tools.grammar() if tools else None,
    ), stream=bool(body.stream))
    completion_id, created = new_id("chatcmpl-"), int(time.time())
    with_logprobs = top_logprobs is not None
    # With tool_choice "none" the model still reads the tools, and whatever it writes is text.
    parsers = [ToolCallParser(tools.parallel) for _ in range(n)] if tools and tools.choice != "none" else None

    def whole(outcome: GatheredChoices) -> ChatCompletion:
        return ChatCompletion(
            id=completion_id, created=created, model=body.model, usage=outcome.usage,
            system_fingerprint=SYSTEM_FINGERPRINT,
            choices=[_chat_choice(outcome, index, parsers[index] if parsers else None, with_logprobs)
                     for index in range(n)],
        )

    def store(completion: ChatCompletion) -> None:
        svc.stored_completions.store(project(request), StoredChatInput(messages=body.messages, tools=body.tools),
                                     metadata, completion)

    if not body.stream:
        outcome = await gather_whole(request, generation)
        if outcome is None:
            return Response(status_code=499)  # nobody is there to read it
        for index, parser in enumerate(parsers or ()):
            parser.feed(outcome.texts[index])
            parser.finish()
        answer = whole(outcome)
        if body.store:
            store(answer)
        return MsgspecResponse(answer)

    def chunk(choices: list[ChatChunkChoice], usage: Usage | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(id=completion_id, created=created, model=body.model, choices=choices, usage=usage,
                                   system_fingerprint=SYSTEM_FINGERPRINT)

    def chunks(event: Event) -> list[ChatCompletionChunk]:
        if isinstance(event, Started):
            return [chunk([ChatChunkChoice(index=i, delta=ChatDelta(role="assistant", content=""))]) for i in range(n)]
        if isinstance(event, Piece):
            text, calls = parsers[event.choice].feed(event.text) if parsers else (event.text, [])
            sent = len(parsers[event.choice].calls) - len(calls) if parsers else 0
            return [chunk([ChatChunkChoice(
                index=event.choice, delta=ChatDelta(content=text if text or not calls else None, tool_calls=[
                    ToolCallDelta(index=sent + offset, id=call.id, function=_tool_call(call).function)
                    for offset, call in enumerate(calls)] or None),
                logprobs=_chat_logprobs(event.logprobs) if with_logprobs else None,
            )])]
        if isinstance(event, ChoiceDone):
            rest = parsers[event.choice].finish() if parsers else ""
            made = parsers[event.choice].calls if parsers else []
            held = [chunk([ChatChunkChoice(index=event.choice, delta=ChatDelta(content=rest))])] if rest else []
            return [*held, chunk([ChatChunkChoice(index=event.choice, delta=ChatDelta(),
                                                  finish_reason=_finish_reason(event.finish_reason, made))])]
        return []

    events = await taken_on(generation)
    return _event_stream(generation, events, chunks, (lambda usage: chunk([], usage)) if include_usage else None,
                         (lambda outcome: store(whole(outcome))) if body.store else None)


@operation("Complete a text prompt", body=CompletionRequest, response=Completion, streams=True)
async def completions(request: Request) -> Response:
    svc = services(request)
    body = await decode_json(request, CompletionRequest)
    params = completion_sampling(body)
    top_logprobs = completion_top_logprobs(body)
    include_usage = _include_usage(body.stream, body.stream_options)
    n = choice_count(body.n)
    prompts = completion_prompts(body.prompt)
    check_rows(len(prompts), n, svc.settings.max_request_rows)
    served = svc.catalog.get(project(request), body.model)
    generation = svc.engine.submit(GenerationRequest(
        project=project(request), served=served, prompts=prompts, n=n, params=params, chat=False,
        echo=bool(body.echo), top_logprobs=top_logprobs,
    ), stream=bool(body.stream))
    with_logprobs = top_logprobs is not None
    completion_id, created = new_id("cmpl-"), int(time.time())

    def completion(choices: list[CompletionChoice], usage: Usage | None = None) -> Completion:
        return Completion(id=completion_id, created=created, model=body.model, choices=choices, usage=usage,
                          system_fingerprint=SYSTEM_FINGERPRINT)

    if not body.stream:
        outcome = await gather_whole(request, generation)
        if outcome is None:
            return Response(status_code=499)  # nobody is there to read it
        return MsgspecResponse(completion(
            [
                CompletionChoice(index=index, text=text, finish_reason=outcome.finish_reasons[index],
                                 logprobs=_completion_logprobs(outcome.logprobs[index], 0) if with_logprobs else None)
                for index, text in enumerate(outcome.texts)
            ],
            outcome.usage,
        ))
    streamed_text = [0] * generation.choices  # characters streamed so far, for each token's text_offset

    def chunks(event: Event) -> list[Completion]:
        if isinstance(event, Started):
            return [completion([CompletionChoice(index=i, text=text)]) for i, text in event.echoed.items()]
        if isinstance(event, Piece):
            logprobs = _completion_logprobs(event.logprobs, streamed_text[event.choice]) if with_logprobs else None
            streamed_text[event.choice] += sum(len(entry.token) for entry in event.logprobs)
            return [completion([CompletionChoice(index=event.choice, text=event.text, logprobs=logprobs)])]
        if isinstance(event, ChoiceDone):
            return [completion([CompletionChoice(index=event.choice, text="",
                                                 finish_reason=event.finish_reason)])]
        return []

    events = await taken_on(generation)
    return _event_stream(generation, events, chunks, (lambda usage: completion([], usage)) if include_usage else None)


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
]
