"""Reading request bodies and query parameters into typed values, with OpenAI-style errors."""

import functools
from typing import Any, TypeVar, cast

import msgspec
from starlette.datastructures import QueryParams
from starlette.requests import Request

from server.errors import APIError, invalid_request, malformed_body

T = TypeVar("T")

MAX_JSON_BODY_BYTES = 16 * 1024 * 1024


async def read_body(request: Request, limit: int = MAX_JSON_BODY_BYTES) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"Request body too large: the limit is {limit} bytes.", code="request_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"Request body too large: the limit is {limit} bytes.", code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def field_path(error: msgspec.ValidationError) -> str | None:
    # msgspec ends its messages with "- at `$.a.b[0]`" (and "[...]" for a value under some key of a dict);
    # OpenAI's `param` names the field.
    message = str(error)
    marker = "- at `$."
    if marker in message:
        return message.split(marker, 1)[1].rstrip("`").replace("[...]", "")
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
    except RecursionError:
        raise malformed_body("The request body is nested too deeply.") from None
    if not isinstance(raw, dict):
        raise malformed_body("The request body must be a JSON object.")
    try:
        return msgspec.convert(raw, body_type)
    except msgspec.ValidationError as exc:
        refusal = exc
    if "got `float`" in str(refusal):
        # JSON Schema counts 5628.0 as an integer, and clients that hold every number as a float send
        # such values; only on a refusal is the body walked, so the usual request pays nothing.
        try:
            return msgspec.convert(_whole_floats_as_ints(raw), body_type)
        except msgspec.ValidationError as exc:
            refusal = exc
    raise invalid_request(f"Invalid request body: {refusal}", param=field_path(refusal))


def _whole_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_floats_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_floats_as_ints(item) for item in value]
    return value


def decode_query(request: Request, query_type: type[T]) -> T:
    """The query string as `query_type`; `name[key]=value` pairs gather into a dict field `name`.

    Clients poll with the same few query strings, so each is decoded once: the decoded queries are
    never changed, and a query string that is refused is refused again each time."""
    return _decoded_query(cast(Any, query_type), request.scope["query_string"])  # (classes hash; mypy doubts it)


@functools.lru_cache(maxsize=4096)
def _decoded_query(query_type: type[Any], query_string: bytes) -> Any:
    raw: dict[str, Any] = {}
    for key, value in QueryParams(query_string).multi_items():
        name, bracket, rest = key.partition("[")
        if bracket and rest.endswith("]") and not isinstance(raw.get(name), str):
            raw.setdefault(name, {})[rest[:-1]] = value
        elif not isinstance(raw.get(key), dict):
            raw[key] = value
    try:
        return msgspec.convert(raw, query_type, strict=False)
    except msgspec.ValidationError as exc:
        param = field_path(exc)
        message = str(exc).split(" - at `", 1)[0]
        raise invalid_request(f"Invalid query parameter {param!r}: {message}.", param=param) from None
