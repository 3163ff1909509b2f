"""Answers: JSON encoded by msgspec (the one encoder of every wire object), and a file's bytes."""

import os
from typing import Any, BinaryIO

import anyio.to_thread
import msgspec
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

_encoder = msgspec.json.Encoder()


class MsgspecResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encoder.encode(content)


class OpenFileResponse(Response):
    """A file's bytes, read from a file opened before the answer is made.

    Deleting a file only unlinks its name: a file already open keeps its content until it is closed,
    so a download that races a delete sends the whole body. (Starlette's FileResponse opens the path
    only once the answer starts, and then finds it gone: a 500, or a body cut short.)
    """

    chunk_size = 1 << 20

    def __init__(self, handle: BinaryIO, media_type: str):
        super().__init__(media_type=media_type, headers={"content-length": str(os.fstat(handle.fileno()).st_size)})
        self.handle = handle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            if scope["method"] != "HEAD":
                while chunk := await anyio.to_thread.run_sync(self.handle.read, self.chunk_size):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.handle.close()
