"""Receiving a multipart upload straight into a blob, never holding the file in memory.

python-multipart's push parser hands us each chunk of the file part (`file` of `POST /v1/files`, `data`
of an Upload's part) as it arrives; the chunk goes to the caller's `BlobWriter` under the blob store's
tmp/ folder. Past the size limit the rest of the body is read and dropped, so the client sees the 413
instead of a broken pipe. The text fields of `POST /v1/files` are decoded as `FileUploadFields`, so the
bounds the OpenAPI document states are the bounds enforced.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec
import python_multipart
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect, Request

from contract.literals import UPLOAD_PURPOSES
from server.decoding import field_path
from server.errors import APIError, insufficient_storage, invalid_request, is_out_of_space, malformed_body
from server.files.store import display_name
from server.protocol import EXPIRY_SECONDS, FileUploadFields
from storage.blobs import BlobWriter

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

MAX_FIELD_BYTES = 64 * 1024
# The form of `POST /v1/files` has four text fields and the file: more parts, or more field text in all,
# is not an upload but a load on the server's memory.
MAX_FORM_PARTS = 16
MAX_FORM_FIELD_BYTES = 256 * 1024
# A client that keeps sending after the limit is cut off after this much more.
MAX_DRAIN_BYTES = 8 * 1024 * 1024 * 1024

# OpenAI's wording for a field that is missing or out of its bounds.
_FIELD_PROBLEMS = {
    "purpose": "Invalid value for 'purpose': {value!r}. Supported values are: " + ", ".join(UPLOAD_PURPOSES) + ".",
    "expires_after[anchor]": "expires_after[anchor] must be 'created_at'.",
    "expires_after[seconds]": f"expires_after[seconds] must be an integer from {EXPIRY_SECONDS[0]} to "
                              f"{EXPIRY_SECONDS[1]}.",
}


class UploadTooLarge(Exception):
    pass


class FormTooLarge(Exception):
    def __init__(self, message: str, param: str | None):
        super().__init__(message)
        self.param = param


def incomplete_upload(what: str, param: str = "file") -> APIError:
    return invalid_request(f"{what}, so the upload is incomplete and nothing was stored. Send the whole body.",
                           param=param, code="incomplete_upload")


@dataclass(frozen=True)
class ReceivedUpload:
    fields: FileUploadFields
    filename: str


class _PartCollector:
    """python-multipart callbacks that route the file part to the writer and keep the text fields."""

    def __init__(self, writer: BlobWriter, max_bytes: int, file_field: str):
        self.writer = writer
        self.max_bytes = max_bytes
        self.file_field = file_field
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.header_name = b""
        self.header_value = b""
        self.disposition = b""
        self.field_name: str | None = None
        self.field_value = bytearray()
        self.in_file = False
        self.parts = 0
        self.field_bytes = 0
        self.complete = False  # the closing boundary arrived

    def callbacks(self) -> "MultipartCallbacks":
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": lambda data, start, end: self._add_header_name(data[start:end]),
            "on_header_value": lambda data, start, end: self._add_header_value(data[start:end]),
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_end": self.on_end,
        }

    def _add_header_name(self, data: bytes) -> None:
        self.header_name += data

    def _add_header_value(self, data: bytes) -> None:
        self.header_value += data

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_FORM_PARTS:
            raise FormTooLarge(f"The form has more than {MAX_FORM_PARTS} parts; an upload has a 'file' part and "
                               "a few fields.", None)
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
        if self.field_name == self.file_field:
            if self.filename is not None:
                raise invalid_request(f"Send exactly one {self.file_field!r} part.", param=self.file_field)
            self.filename = display_name(options.get(b"filename", b"upload").decode("utf-8", "replace"))
            self.in_file = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            if self.writer.size + (end - start) > self.max_bytes:
                raise UploadTooLarge()
            self.writer.write(data[start:end])
            return
        self.field_bytes += end - start
        if len(self.field_value) + (end - start) > MAX_FIELD_BYTES:
            raise FormTooLarge(f"The form field {self.field_name!r} is longer than {MAX_FIELD_BYTES} bytes.",
                               self.field_name)
        if self.field_bytes > MAX_FORM_FIELD_BYTES:
            raise FormTooLarge(f"The form's fields hold more than {MAX_FORM_FIELD_BYTES} bytes in all.", None)
        self.field_value += data[start:end]

    def on_part_end(self) -> None:
        if not self.in_file and self.field_name is not None:
            self.fields[self.field_name] = self.field_value.decode("utf-8", "replace")

    def on_end(self) -> None:
        self.complete = True


def _decode_fields(fields: dict[str, str]) -> FileUploadFields:
    if not fields.get("purpose"):
        raise invalid_request("Missing required parameter: 'purpose'.", param="purpose")
    try:
        decoded = msgspec.convert(fields, FileUploadFields, strict=False)
    except msgspec.ValidationError as exc:
        param = field_path(exc) or ""
        problem = _FIELD_PROBLEMS.get(param, "Invalid form field: {error}")
        raise invalid_request(problem.format(value=fields.get(param), error=exc), param=param or None) from None
    if decoded.expires_after_seconds is not None and decoded.expires_after_anchor is None:
        raise invalid_request(_FIELD_PROBLEMS["expires_after[anchor]"], param="expires_after[anchor]")
    if decoded.expires_after_anchor is not None and decoded.expires_after_seconds is None:
        raise invalid_request(_FIELD_PROBLEMS["expires_after[seconds]"], param="expires_after[seconds]")
    return decoded


async def receive_upload(request: Request, writer: BlobWriter, max_bytes: int) -> ReceivedUpload:
    """`POST /v1/files`: the `file` part lands in `writer` (uncommitted), the fields are decoded."""
    fields, filename = await receive_form(request, writer, max_bytes, "file", "a 'file' part and a 'purpose' field")
    return ReceivedUpload(fields=_decode_fields(fields), filename=filename)


async def receive_form(request: Request, writer: BlobWriter, max_bytes: int, file_field: str,
                       expected: str) -> tuple[dict[str, str], str]:
    """Parse the multipart body: the part `file_field` lands in `writer` (uncommitted); answers the text fields
    and the file part's name. `expected` says what the form holds, for the answer to a body that is not one."""
    content_type, options = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        raise invalid_request(f"Uploads must be sent as multipart/form-data with {expected}.")
    collector = _PartCollector(writer, max_bytes, file_field)
    try:
        parser = python_multipart.MultipartParser(options[b"boundary"], collector.callbacks())
        stream = request.stream()
        try:
            async for chunk in stream:
                parser.write(chunk)
            parser.finalize()
        except FormTooLarge as exc:
            await drain(stream)
            raise invalid_request(str(exc), param=exc.param, code="form_too_large") from None
        except ClientDisconnect:
            raise incomplete_upload("The client closed the connection before the whole body arrived",
                                    file_field) from None
        except UploadTooLarge:
            await drain(stream)
            raise APIError(
                413,
                f"The {file_field!r} part is larger than the limit of {max_bytes} bytes.",
                param=file_field,
                code="file_too_large",
            ) from None
        except OSError as exc:
            if not is_out_of_space(exc):
                raise
            raise await out_of_space(writer, stream) from None
    except python_multipart.exceptions.FormParserError as exc:
        raise malformed_body(f"The multipart body could not be parsed: {exc}.") from None
    if not collector.complete:
        raise incomplete_upload("The multipart body ends before its closing boundary", file_field)
    if collector.filename is None:
        raise invalid_request(f"Missing required parameter: {file_field!r}.", param=file_field)
    return collector.fields, collector.filename


async def out_of_space(writer: BlobWriter, stream: AsyncIterator[bytes]) -> APIError:
    """The disk filled while a body streamed in: give the space back, read the rest (so the client hears
    the answer), and say why."""
    writer.abort()
    await drain(stream)
    return insufficient_storage()


async def drain(stream: AsyncIterator[bytes]) -> None:
    """Read and drop the rest of a body, so the client sees the error answer and not a broken pipe."""
    drained = 0
    async for chunk in stream:
        drained += len(chunk)
        if drained > MAX_DRAIN_BYTES:
            break
