"""OpenAI's error envelope, `{"error": {"message", "type", "param", "code"}}`: every error the server
answers, on `/v1` and on the internal API alike, and what the worker reads back."""

import msgspec


class ErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(msgspec.Struct):
    error: ErrorDetail
