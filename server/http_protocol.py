"""uvicorn's httptools protocol with the limits httptools does not have: on the size of a request head,
and on how long a request may take to arrive.

- A request line and headers over MAX_HEAD_BYTES are answered 431 (h11 refuses a head over 16 KiB;
  httptools would buffer one of any size).
- A head must arrive whole within `head_seconds` of the connection (or of the request's first byte,
  on a kept-alive connection): a client that sends nothing, or a header line now and then, holds a
  connection and its memory for nothing.
- A body may fall silent for at most `body_idle_seconds`, and once it has taken `body_grace_seconds`
  it must have come at `body_min_rate` bytes/s on average: a byte every few seconds is never silent
  for long, yet never ends. Silence while the server itself has paused reading (its own backpressure)
  does not count.

A request cut off by a limit is answered 408 in OpenAI's error envelope (431 for a head too large), and
its connection closed; the server goes on serving the others.
"""

from asyncio import TimerHandle, Transport

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from contract.error_envelope import ErrorDetail, ErrorResponse

MAX_HEAD_BYTES = 64 * 1024


def _refusal(status: str, message: str, code: str) -> bytes:
    body = msgspec.json.encode(ErrorResponse(error=ErrorDetail(
        message=message, type="invalid_request_error", code=code,
    )))
    head = (f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n")
    return head.encode() + body


HEAD_TOO_LARGE = _refusal(
    "431 Request Header Fields Too Large",
    f"The request line and headers are larger than the limit of {MAX_HEAD_BYTES} bytes.", "headers_too_large",
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """The size of a head that arrived whole is measured when it completes (and never reaches the app); one
    still arriving is measured by the bytes received since its request began."""

    head_seconds = 10.0
    body_idle_seconds = 30.0
    body_grace_seconds = 10.0
    body_min_rate = 1024.0  # bytes per second

    _head_bytes = 0
    _head_complete = False
    _refused = False
    _chunk_bytes = 0
    # One timer per connection, moved by setting `_expires_at`: a request's phases change the deadline
    # several times, and a timer made and cancelled for each is a heap push and pop on the hot path.
    _expires_at: float | None = None
    _expiring = "head"
    _timer: TimerHandle | None = None
    _timer_at = 0.0
    _body_started = 0.0
    _body_bytes = 0

    @classmethod
    def with_limits(cls, head_seconds: float, body_idle_seconds: float, body_grace_seconds: float,
                    body_min_rate: float) -> type["BoundedHttpToolsProtocol"]:
        """The protocol class for uvicorn, with these limits."""
        limits = {"head_seconds": head_seconds, "body_idle_seconds": body_idle_seconds,
                  "body_grace_seconds": body_grace_seconds, "body_min_rate": body_min_rate}
        return type("BoundedHttpToolsProtocol", (cls,), limits)

    # Time limits

    def _arm(self, seconds: float, what: str) -> None:
        self._expires_at, self._expiring = self.loop.time() + seconds, what
        if self._timer is not None and self._timer_at <= self._expires_at:
            return  # it fires first, and moves itself on to the deadline
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = self.loop.call_at(self._expires_at, self._check), self._expires_at

    def _disarm(self) -> None:
        self._expires_at = None

    def _check(self) -> None:
        self._timer = None
        if self._expires_at is None:
            return
        if self._expires_at > self.loop.time():
            self._timer, self._timer_at = self.loop.call_at(self._expires_at, self._check), self._expires_at
            return
        self._time_out(self._expiring)

    def _time_out(self, what: str) -> None:
        self._expires_at = None
        if self.transport.is_closing():
            return
        if what == "body" and self.flow.read_paused:  # the server is slow, not the client: wait on
            self._arm(self.body_idle_seconds, what)
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(_refusal(
                "408 Request Timeout", f"The request's {'head' if what == 'head' else 'body'} did not arrive in time, "
                "so the connection is closed.", "request_timeout",
            ))
        self.transport.close()

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.head_seconds, "head")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    # Parsing

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
            self._disarm()
            self.transport.write(HEAD_TOO_LARGE)
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_complete = False
        if self._expires_at is None:  # a later request on a kept-alive connection: its head's clock starts now
            self._arm(self.head_seconds, "head")

    def on_headers_complete(self) -> None:
        self._head_complete = True
        # The head came in this chunk and the earlier ones counted in `_head_bytes`: when those are under
        # the cap, so is the head, and the exact measure (a sum over every header) is not needed.
        within_cap = self._head_bytes + self._chunk_bytes <= MAX_HEAD_BYTES
        if not within_cap and len(self.url) + sum(len(n) + len(v) for n, v in self.headers) > MAX_HEAD_BYTES:
            self._refused = True
            return
        super().on_headers_complete()
        # The body's clock; a request without a body completes at once, and `on_message_complete` stops it.
        self._body_started, self._body_bytes = self.loop.time(), 0
        self._arm(self.body_idle_seconds, "body")

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        super().on_body(body)
        self._body_bytes += len(body)
        elapsed = self.loop.time() - self._body_started
        if elapsed > self.body_grace_seconds and self._body_bytes < self.body_min_rate * elapsed:
            self._time_out("body")
        else:
            self._arm(self.body_idle_seconds, "body")

    def on_message_complete(self) -> None:
        self._disarm()
        if not self._refused:
            super().on_message_complete()
