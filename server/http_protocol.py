"""uvicorn's httptools protocol with a cap on the request head, which httptools does not have.

h11 refuses a head over 16 KiB; httptools would buffer one of any size. Here a head still
incomplete after MAX_HEAD_BYTES is answered 431 in OpenAI's error envelope and the connection closed.
"""

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.protocol import ErrorDetail, ErrorResponse

MAX_HEAD_BYTES = 64 * 1024


def _refusal() -> bytes:
    body = msgspec.json.encode(ErrorResponse(error=ErrorDetail(
        message=f"The request line and headers are larger than the limit of {MAX_HEAD_BYTES} bytes.",
        type="invalid_request_error", code="headers_too_large",
    )))
    head = (
        "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    _head_bytes = 0
    _head_complete = False

    def data_received(self, data: bytes) -> None:
        in_head = not self._head_complete  # at the end of a body, the next head may start within `data`
        super().data_received(data)
        if not in_head or self._head_complete or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            self.transport.write(_refusal())
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._head_complete = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_complete = False
        self._head_bytes = 0
