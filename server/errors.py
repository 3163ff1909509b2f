"""Every failure leaves the server in OpenAI's error envelope, with the right status."""

import errno
import logging
import sqlite3
from collections.abc import Mapping

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from contract.error_envelope import ErrorDetail, ErrorResponse

log = logging.getLogger("gxft.errors")


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.detail = ErrorDetail(message=message, type=type, param=param, code=code)


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def not_found(kind: str, object_id: str, param: str = "id") -> APIError:
    return APIError(404, f"No such {kind} object: {object_id}", param=param)


def job_not_found(job_id: str) -> APIError:
    return APIError(404, f"No such fine-tuning job: {job_id}", param="fine_tuning_job_id", code="job_not_found")


def checkpoint_not_found(checkpoint_id: str) -> APIError:
    return APIError(404, f"No such checkpoint: {checkpoint_id}", param="checkpoint_id")


def model_not_found(name: str, available: list[str]) -> APIError:
    shown = ", ".join(available[:20]) + (", …" if len(available) > 20 else "")
    return APIError(
        404,
        f"The model {name!r} does not exist or you do not have access to it. Available models: {shown}.",
        param="model",
        code="model_not_found",
    )


def job_not_held(job_id: str) -> APIError:
    """A worker reported on a job that is no longer assigned to it: it must stop working on it."""
    return APIError(409, f"Job {job_id} is not assigned to this worker.", code="job_not_owned")


def quota_exceeded(message: str) -> APIError:
    """OpenAI's answer for a quota used up: 429, `insufficient_quota`."""
    return APIError(429, message, type="insufficient_quota", code="insufficient_quota")


def malformed_body(message: str) -> APIError:
    return APIError(422, message, code="invalid_body")


def insufficient_storage() -> APIError:
    return APIError(
        507, "The server is out of disk space, so nothing was stored. Free space on the server and try again.",
        type="server_error", code="insufficient_storage",
    )


def is_out_of_space(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def error_response(status: int, detail: ErrorDetail, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        msgspec.json.encode(ErrorResponse(error=detail)),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return error_response(exc.status, exc.detail)


_HTTP_MESSAGES = {
    404: "Unknown request URL: {method} {path}. Please check the URL for typos.",
    405: "Method {method} is not allowed on {path}.",
}


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    template = _HTTP_MESSAGES.get(exc.status_code)
    message = template.format(method=request.method, path=request.url.path) if template else str(exc.detail)
    code = "unknown_url" if exc.status_code == 404 else None
    detail = ErrorDetail(message=message, type="invalid_request_error", code=code)
    headers = exc.headers
    if exc.status_code == 405:
        headers = {"Allow": ", ".join(_allowed_methods(request))}
    return error_response(exc.status_code, detail, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method of the path: Starlette's own 405 names only those of the first route that matched it."""
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return sorted(methods)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    if is_out_of_space(exc):
        log.error("out of disk space on %s %s: %s", request.method, request.url.path, exc)
        return await handle_api_error(request, insufficient_storage())
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(
        500, ErrorDetail(message="The server had an error while processing your request.", type="server_error")
    )
