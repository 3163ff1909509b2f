"""From an OpenAI request to what the generator needs, with OpenAI's bounds and error messages."""

from dataclasses import dataclass, field
from typing import Any

from server.completions_protocol import ChatCompletionRequest, ChatMessage, CompletionRequest, SamplingRequest
from server.errors import invalid_request

MAX_CHOICES = 128
MAX_TOP_LOGPROBS = 20  # chat's top_logprobs, as OpenAI bounds it
MAX_COMPLETION_LOGPROBS = 5  # completions' logprobs, as OpenAI bounds it
MAX_STOP_SEQUENCES = 4
MAX_TOKEN_ID_DIGITS = 9  # vocabularies stay far below a billion tokens
SEED_RANGE = (-(2**63), 2**63 - 1)  # a 64-bit integer, as OpenAI documents it and torch's generator takes


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = None  # None: up to the model's context length
    stop: tuple[str, ...] = ()
    seed: int | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)


def _in_range(name: str, value: float | None, low: float, high: float, default: float) -> float:
    if value is None:
        return default
    if not low <= value <= high:
        raise invalid_request(f"Invalid '{name}': {value} is outside the range {low:g} to {high:g}.", param=name)
    return float(value)


def _stop(stop: str | list[str] | None) -> tuple[str, ...]:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > MAX_STOP_SEQUENCES:
        raise invalid_request(f"'stop' takes at most {MAX_STOP_SEQUENCES} sequences.", param="stop")
    if any(not s for s in stops):
        raise invalid_request("'stop' sequences cannot be empty strings.", param="stop")
    return tuple(stops)


def _logit_bias(bias: dict[str, float] | None) -> dict[int, float]:
    result = {}
    for key, value in (bias or {}).items():
        if not (key.isascii() and key.isdigit() and len(key) <= MAX_TOKEN_ID_DIGITS):
            raise invalid_request(f"Invalid 'logit_bias': key {key!r} is not a token id.", param="logit_bias")
        result[int(key)] = _in_range("logit_bias", value, -100, 100, 0)
    return result


def _seed(seed: int | None) -> int | None:
    if seed is not None and not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise invalid_request(f"Invalid 'seed': it must be a 64-bit integer, from {SEED_RANGE[0]} to {SEED_RANGE[1]}.",
                              param="seed")
    return seed


def _positive(name: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise invalid_request(f"Invalid '{name}': {value}; it must be at least 1.", param=name)
    return value


def choice_count(n: int | None) -> int:
    if n is not None and not 1 <= n <= MAX_CHOICES:
        raise invalid_request(f"Invalid 'n': {n}; it must be from 1 to {MAX_CHOICES}.", param="n")
    return n or 1


def check_rows(prompts: int, n: int, cap: int) -> None:
    """A request becomes prompts × n rows of generation; past `cap` it is refused before any work."""
    if prompts * n > cap:
        raise invalid_request(
            f"This request asks for {prompts} prompts × n={n} = {prompts * n} completions, more than the {cap} one "
            "request may ask for (GXFT_MAX_REQUEST_ROWS). Send fewer prompts or a smaller n, or split the request.",
            param="n" if prompts == 1 else "prompt", code="request_too_large",
        )


def chat_top_logprobs(request: ChatCompletionRequest) -> int | None:
    """How many alternatives each token lists, or None where logprobs were not asked."""
    if request.top_logprobs is not None:
        if not request.logprobs:
            raise invalid_request("'top_logprobs' needs 'logprobs' set to true.", param="top_logprobs")
        if not 0 <= request.top_logprobs <= MAX_TOP_LOGPROBS:
            raise invalid_request(f"Invalid 'top_logprobs': {request.top_logprobs}; it must be from 0 to "
                                  f"{MAX_TOP_LOGPROBS}.", param="top_logprobs")
    return (request.top_logprobs or 0) if request.logprobs else None


def completion_top_logprobs(request: CompletionRequest) -> int | None:
    if request.logprobs is None:
        return None
    if not 0 <= request.logprobs <= MAX_COMPLETION_LOGPROBS:
        raise invalid_request(f"Invalid 'logprobs': {request.logprobs}; it must be from 0 to "
                              f"{MAX_COMPLETION_LOGPROBS}.", param="logprobs")
    if request.echo:
        raise invalid_request("'echo' with 'logprobs' (the log-probabilities of the prompt's tokens) is not supported "
                              "by GXFT's inference server; ask for one of them.", param="logprobs")
    return request.logprobs


def sampling_params(request: SamplingRequest, max_tokens: int | None) -> SamplingParams:
    return SamplingParams(
        temperature=_in_range("temperature", request.temperature, 0, 2, 1.0),
        top_p=_in_range("top_p", request.top_p, 0, 1, 1.0),
        max_tokens=_positive("max_tokens", max_tokens),
        stop=_stop(request.stop),
        seed=_seed(request.seed),
        frequency_penalty=_in_range("frequency_penalty", request.frequency_penalty, -2, 2, 0.0),
        presence_penalty=_in_range("presence_penalty", request.presence_penalty, -2, 2, 0.0),
        logit_bias=_logit_bias(request.logit_bias),
    )


def _refuse_unsupported(fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        if value:
            raise invalid_request(f"'{name}' is not supported by GXFT's inference server.", param=name)


def chat_sampling(request: ChatCompletionRequest) -> SamplingParams:
    if request.max_tokens is not None and request.max_completion_tokens is not None:
        raise invalid_request("Give either max_tokens or max_completion_tokens, not both.", param="max_tokens")
    _refuse_unsupported({
        "functions": request.functions,
        "audio": request.audio,
        "modalities": [m for m in request.modalities or [] if m != "text"],
        "prediction": request.prediction,
        "web_search_options": request.web_search_options,
        "moderation": request.moderation,  # a check GXFT does not run: refused rather than skipped in silence
    })
    if not request.messages:
        raise invalid_request("'messages' must contain at least one message.", param="messages")
    return sampling_params(request, request.max_completion_tokens or request.max_tokens)


def completion_sampling(request: CompletionRequest) -> SamplingParams:
    _refuse_unsupported({"suffix": request.suffix})
    if request.best_of is not None and request.best_of != (request.n or 1):
        raise invalid_request("'best_of' other than 'n' is not supported by GXFT's inference server.", param="best_of")
    return sampling_params(request, request.max_tokens)


@dataclass(frozen=True)
class ResponseFormat:
    name: str
    schema: dict[str, Any]  # the JSON schema every answer follows


def response_format(request: ChatCompletionRequest) -> ResponseFormat | None:
    """`response_format` as a schema to enforce; None for plain text."""
    given = request.response_format or {"type": "text"}
    kind = given.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        if not any("json" in text.lower() for text in message_texts(request.messages)):
            raise invalid_request("'messages' must contain the word 'json' in some form, to use 'response_format' "
                                  "of type 'json_object'.", param="messages")
        return ResponseFormat(name="json_object", schema={"type": "object"})
    if kind == "json_schema":
        spec = given.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
            raise invalid_request("Missing required parameter: 'response_format.json_schema.name'.",
                                  param="response_format.json_schema.name")
        schema = spec.get("schema", {})
        if not isinstance(schema, dict):
            raise invalid_request("'response_format.json_schema.schema' must be a JSON schema object.",
                                  param="response_format.json_schema.schema")
        return ResponseFormat(name=spec["name"], schema=schema)
    raise invalid_request(f"Invalid 'response_format.type': {kind!r}; expected 'text', 'json_object' or "
                          "'json_schema'.", param="response_format.type")


def message_texts(messages: list[ChatMessage]) -> list[str]:
    texts = []
    for message in messages:
        if isinstance(message.content, str):
            texts.append(message.content)
        elif isinstance(message.content, list):
            texts.extend(part["text"] for part in message.content if isinstance(part.get("text"), str))
    return texts


def chat_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Messages as a chat template reads them: text content, `developer` spoken as `system`."""
    result = []
    for index, message in enumerate(messages):
        content = message.content
        if isinstance(content, list):
            parts = []
            for part in content:
                if part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise invalid_request(
                        f"Message {index} has a {part.get('type')!r} content part; GXFT serves text models, which "
                        "read only 'text' parts.",
                        param=f"messages[{index}].content",
                    )
                parts.append(part["text"])
            content = "".join(parts)
        entry: dict[str, Any] = {"role": "system" if message.role == "developer" else message.role,
                                 "content": content or ""}
        for name in ("name", "tool_calls", "tool_call_id"):
            if (value := getattr(message, name)) is not None:
                entry[name] = value
        result.append(entry)
    return result


def completion_prompts(prompt: str | list[Any]) -> list[str | list[int]]:
    """`prompt` in any of its four forms, as a list of texts or token id lists."""
    if isinstance(prompt, str):
        return [prompt]
    if not prompt:
        raise invalid_request("'prompt' cannot be an empty list.", param="prompt")
    if all(isinstance(item, int) and not isinstance(item, bool) for item in prompt):
        return [list(prompt)]
    prompts: list[str | list[int]] = []
    for item in prompt:
        if isinstance(item, str):
            prompts.append(item)
        elif isinstance(item, list) and item and all(isinstance(t, int) and not isinstance(t, bool) for t in item):
            prompts.append(list(item))
        else:
            raise invalid_request(
                "'prompt' must be a string, a list of strings, a list of token ids or a list of token id lists.",
                param="prompt",
            )
    return prompts
