"""Reading request bodies and query parameters into typed values, with OpenAI-style errors."""

from typing import Any, TypeVar

import msgspec
from starlette.requests import Request

from server.errors import APIError, invalid_request, malformed_body

T = TypeVar("T")

MAX_JSON_BODY_BYTES = 16 * 1024 * 1024


async def read_body(request: Request, limit: int = MAX_JSON_BODY_BYTES) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"Request body too large: the limit is {limit} bytes.", code="request_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"Request body too large: the limit is {limit} bytes.", code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _field_path(error: msgspec.ValidationError) -> str | None:
    # msgspec ends its messages with "- at `$.a.b[0]`"; OpenAI's `param` names the field.
    message = str(error)
    marker = "- at `$."
    if marker in message:
        return message.split(marker, 1)[1].rstrip("`")
    return None


async def decode_json(request: Request, body_type: type[T], empty: T | None = None) -> T:
    """Decode the body as `body_type`. An empty body gives `empty` when the endpoint allows one."""
    body = await read_body(request)
    if not body.strip():
        if empty is not None:
            return empty
        raise malformed_body("The request body is empty; expected a JSON object.")
    try:
        raw = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise malformed_body(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(raw, dict):
        raise malformed_body("The request body must be a JSON object.")
    try:
        return msgspec.convert(raw, body_type)
    except msgspec.ValidationError as exc:
        raise invalid_request(f"Invalid request body: {exc}", param=_field_path(exc)) from None


def query_int(request: Request, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_request(f"Invalid '{name}': expected an integer, got {raw!r}.", param=name) from None
    if not minimum <= value <= maximum:
        raise invalid_request(f"Invalid '{name}': {value} is outside the range {minimum} to {maximum}.", param=name)
    return value


def query_choice(request: Request, name: str, default: str, choices: tuple[str, ...]) -> str:
    value = request.query_params.get(name, default)
    if value not in choices:
        raise invalid_request(
            f"Invalid '{name}': {value!r}; expected one of {', '.join(choices)}.", param=name
        )
    return value


def to_builtins(obj: Any) -> Any:
    return msgspec.to_builtins(obj)
