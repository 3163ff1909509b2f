"""Receiving a multipart upload straight into a blob, never holding the file in memory.

python-multipart's push parser hands us each chunk of the `file` part as it arrives; the chunk goes
to a `BlobWriter` under the blob store's tmp/ folder. Past the size limit the rest of the body is
read and dropped (so the client sees the 413 instead of a broken pipe) and the partial blob removed.
"""

import asyncio
import unicodedata

import python_multipart
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from server.errors import APIError, insufficient_storage, invalid_request, is_out_of_space, malformed_body
from storage.blobs import BlobStore, BlobWriter

MAX_FIELD_BYTES = 64 * 1024
MAX_FILENAME_CHARS = 255
# A client that keeps sending after the limit is cut off after this much more.
MAX_DRAIN_BYTES = 8 * 1024 * 1024 * 1024


class UploadTooLarge(Exception):
    pass


class ReceivedUpload:
    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.writer: BlobWriter | None = None


def clean_filename(raw: str) -> str:
    """The name to show for an upload (never used on disk). Clients send a bare name; a path is refused."""
    name = raw.strip()
    if "/" in name or "\\" in name:
        raise invalid_request(
            f"The file name must be a bare name, not a path: {name[:100]!r}.", param="file", code="invalid_filename"
        )
    if any(unicodedata.category(char) == "Cc" for char in name):
        raise invalid_request("The file name contains control characters.", param="file", code="invalid_filename")
    if len(name) > MAX_FILENAME_CHARS:
        raise invalid_request(
            f"The file name is longer than {MAX_FILENAME_CHARS} characters.", param="file", code="invalid_filename"
        )
    if name in (".", ".."):
        raise invalid_request(f"{name!r} is not a file name.", param="file", code="invalid_filename")
    return name or "upload"


class _PartCollector:
    """python-multipart callbacks that route the `file` part to a blob and keep the text fields."""

    def __init__(self, upload: ReceivedUpload, blobs: BlobStore, blob_id: str, max_bytes: int):
        self.upload = upload
        self.blobs = blobs
        self.blob_id = blob_id
        self.max_bytes = max_bytes
        self.header_name = b""
        self.header_value = b""
        self.disposition = b""
        self.field_name: str | None = None
        self.field_value = bytearray()
        self.in_file = False

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": lambda data, start, end: self._add_header_name(data[start:end]),
            "on_header_value": lambda data, start, end: self._add_header_value(data[start:end]),
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def _add_header_name(self, data: bytes) -> None:
        self.header_name += data

    def _add_header_value(self, data: bytes) -> None:
        self.header_value += data

    def on_part_begin(self) -> None:
        self.disposition = b""
        self.field_name = None
        self.field_value = bytearray()
        self.in_file = False

    def on_header_end(self) -> None:
        if self.header_name.lower() == b"content-disposition":
            self.disposition = self.header_value
        self.header_name = self.header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.disposition)
        if b"name" not in options:
            raise malformed_body('A multipart part has no "name" in its Content-Disposition header.')
        self.field_name = options[b"name"].decode("utf-8", "replace")
        if self.field_name == "file":
            if self.upload.writer is not None:
                raise invalid_request("Send exactly one 'file' part.", param="file")
            raw_name = options.get(b"filename", b"upload").decode("utf-8", "replace")
            self.upload.filename = clean_filename(raw_name)
            self.upload.writer = self.blobs.writer(self.blob_id)
            self.in_file = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            writer = self.upload.writer
            assert writer is not None
            if writer.size + (end - start) > self.max_bytes:
                raise UploadTooLarge()
            writer.write(data[start:end])
            return
        if len(self.field_value) + (end - start) > MAX_FIELD_BYTES:
            raise invalid_request(f"The form field {self.field_name!r} is too long.", param=self.field_name)
        self.field_value += data[start:end]

    def on_part_end(self) -> None:
        if not self.in_file and self.field_name is not None:
            self.upload.fields[self.field_name] = self.field_value.decode("utf-8", "replace")


async def receive_upload(request: Request, blobs: BlobStore, blob_id: str, max_bytes: int) -> ReceivedUpload:
    """Parse the multipart body; the `file` part lands in an uncommitted blob writer.

    The caller commits or aborts `upload.writer`. On any error here it is already aborted.
    """
    content_type, options = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        raise invalid_request(
            "Uploads must be sent as multipart/form-data with a 'file' part and a 'purpose' field."
        )
    upload = ReceivedUpload()
    collector = _PartCollector(upload, blobs, blob_id, max_bytes)
    try:
        parser = python_multipart.MultipartParser(options[b"boundary"], collector.callbacks())
        stream = request.stream()
        try:
            async for chunk in stream:
                parser.write(chunk)
            parser.finalize()
        except UploadTooLarge:
            await drain(stream)
            raise APIError(
                413,
                f"The file is larger than the limit of {max_bytes} bytes.",
                param="file",
                code="file_too_large",
            ) from None
        except OSError as exc:
            if not is_out_of_space(exc):
                raise
            _abort(upload)  # give the space back before reading the rest
            await drain(stream)
            raise insufficient_storage() from None
    except python_multipart.exceptions.FormParserError as exc:
        _abort(upload)
        raise malformed_body(f"The multipart body could not be parsed: {exc}.") from None
    except BaseException:
        _abort(upload)
        raise
    return upload


def _abort(upload: ReceivedUpload) -> None:
    if upload.writer is not None:
        upload.writer.abort()
        upload.writer = None


async def drain(stream) -> None:
    """Read and drop the rest of a body, so the client sees the error answer and not a broken pipe."""
    drained = 0
    async for chunk in stream:
        drained += len(chunk)
        if drained > MAX_DRAIN_BYTES:
            break


async def commit_upload(writer: BlobWriter) -> None:
    # fsync of a large file can take a while: keep it off the event loop.
    await asyncio.to_thread(writer.commit)
