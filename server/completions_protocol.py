"""Wire objects of `/v1/chat/completions` and `/v1/completions`, in OpenAI's shapes.

Requests list every field OpenAI defines, so a client that sends one gets either the behaviour or
a clear "not supported" (server/serving/params.py); a field OpenAI does not define is refused, as
OpenAI refuses it.
"""

from typing import Annotated, Any, Literal

import msgspec

FinishReason = Literal["stop", "length", "tool_calls"]


class StreamOptions(msgspec.Struct, forbid_unknown_fields=True):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class ChatMessage(msgspec.Struct, kw_only=True):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class SamplingRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The fields both endpoints share: the model, and how to sample from it."""

    model: Annotated[str, msgspec.Meta(examples=["gxft/tiny-chat"])]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None  # accepted and ignored, as the bookkeeping fields below


class ChatCompletionRequest(SamplingRequest, kw_only=True, forbid_unknown_fields=True):
    messages: list[ChatMessage]
    max_completion_tokens: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: Any = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    moderation: dict[str, Any] | None = None
    store: bool | None = None  # keep the request and its answer for the stored-completions endpoints
    metadata: dict[str, str] | None = None  # kept with a stored completion, to find it by
    # Accepted and ignored: they change bookkeeping at OpenAI, not the answer.
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    safety_identifier: str | None = None


class CompletionRequest(SamplingRequest, kw_only=True, forbid_unknown_fields=True):
    prompt: str | list[Any]  # a string, strings, token ids, or lists of token ids
    max_tokens: int | None = 16  # OpenAI's default for text completions
    echo: bool | None = None
    logprobs: int | None = None
    best_of: int | None = None
    suffix: str | None = None


class Usage(msgspec.Struct, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class FunctionCall(msgspec.Struct, kw_only=True):
    name: str
    arguments: str  # JSON text


class ToolCall(msgspec.Struct, kw_only=True):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ToolCallDelta(msgspec.Struct, kw_only=True):
    """A streamed tool call: GXFT sends each call whole, in one delta."""

    index: int
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class AssistantMessage(msgspec.Struct, kw_only=True):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None
    tool_calls: list[ToolCall] | msgspec.UnsetType = msgspec.UNSET  # absent (never null) without calls, per OpenAI


class TopLogprob(msgspec.Struct, kw_only=True):
    token: str
    logprob: float
    bytes: list[int] | None


class ChatTokenLogprob(msgspec.Struct, kw_only=True):
    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[TopLogprob]


class ChatLogprobs(msgspec.Struct, kw_only=True):
    content: list[ChatTokenLogprob] | None
    refusal: list[ChatTokenLogprob] | None = None


class CompletionLogprobs(msgspec.Struct, kw_only=True):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class ChatChoice(msgspec.Struct, kw_only=True):
    index: int
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: ChatLogprobs | None = None


class ChatCompletion(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str


class ChatDelta(msgspec.Struct, kw_only=True, omit_defaults=True):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChatChunkChoice(msgspec.Struct, kw_only=True):
    index: int
    delta: ChatDelta
    finish_reason: FinishReason | None = None
    logprobs: ChatLogprobs | None = None


class ChatCompletionChunk(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str


class CompletionChoice(msgspec.Struct, kw_only=True):
    index: int
    text: str
    finish_reason: FinishReason | None = None  # None only inside a stream, before the choice ends
    logprobs: CompletionLogprobs | None = None


class Completion(msgspec.Struct, kw_only=True):
    """Both the answer and each streamed chunk of `/v1/completions`."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str


class StoredChatCompletion(ChatCompletion, kw_only=True):
    """A chat completion made with `store: true`, as the stored-completions endpoints give it back."""

    metadata: dict[str, str]
    tools: list[dict[str, Any]] | None  # the request's, so that the stored exchange can be trained on whole


class StoredChatInput(msgspec.Struct, kw_only=True):
    """What a stored completion keeps of its request."""

    messages: list[ChatMessage]
    tools: list[dict[str, Any]] | None


class StoredChatCompletionListQuery(msgspec.Struct, kw_only=True):
    model: str | None = None
    metadata: Annotated[dict[str, str], msgspec.Meta(max_length=16)] = {}  # `metadata[key]=value`: all must match
    after: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20
    order: Literal["asc", "desc"] = "asc"


class StoredMessage(msgspec.Struct, kw_only=True):
    """One of a stored completion's request messages; its id is the completion's, a dash and its place."""

    id: str
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | None
    name: str | None = None
    content_parts: list[dict[str, Any]] | None = None  # the parts, where the request sent parts
    tool_calls: list[dict[str, Any]] | msgspec.UnsetType = msgspec.UNSET
    tool_call_id: str | msgspec.UnsetType = msgspec.UNSET


class StoredMessageListQuery(msgspec.Struct, kw_only=True):
    after: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20
    order: Literal["asc", "desc"] = "asc"


class UpdateStoredChatCompletionRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    metadata: dict[str, str] | None  # replaces what was there; null clears it
