"""uvicorn's httptools protocol with a cap on the request head, which httptools does not have.

h11 refuses a head over 16 KiB; httptools would buffer one of any size. Here a request line and
headers over MAX_HEAD_BYTES are answered 431 in OpenAI's error envelope and the connection closed.
"""

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from contract.error_envelope import ErrorDetail, ErrorResponse

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
    """Two checks: a head that arrived whole is measured when it completes (and never reaches the app);
    one still arriving is measured by the bytes received since its request began."""

    _head_bytes = 0
    _head_complete = False
    _refused = False
    _chunk_bytes = 0

    def data_received(self, data: bytes) -> None:
        self._chunk_bytes = len(data)
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._head_complete and not self._refused:
            self._head_bytes = 0
            return
        self._head_bytes += len(data)
        if self._refused or self._head_bytes > MAX_HEAD_BYTES:
            self.transport.write(_refusal())
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_complete = False

    def on_headers_complete(self) -> None:
        self._head_complete = True
        # The head came in this chunk and the earlier ones counted in `_head_bytes`: when those are under
        # the cap, so is the head, and the exact measure (a sum over every header) is not needed.
        within_cap = self._head_bytes + self._chunk_bytes <= MAX_HEAD_BYTES
        if not within_cap and len(self.url) + sum(len(n) + len(v) for n, v in self.headers) > MAX_HEAD_BYTES:
            self._refused = True
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()
