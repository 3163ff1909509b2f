"""The public wire objects, each defined once: the server encodes them, the CLI and tests decode them.

Shapes follow OpenAI's API (shared/reference/openai-api.md §3), with Nebius's extra fields where noted.
"""

from typing import Generic, Literal, TypeVar

import msgspec

T = TypeVar("T")

FilePurpose = Literal[
    "assistants", "assistants_output", "batch", "batch_output", "fine-tune", "fine-tune-results",
    "vision", "user_data", "evals",
]
UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")


class ErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(msgspec.Struct):
    error: ErrorDetail


class ListPage(msgspec.Struct, Generic[T]):
    data: list[T]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None
    object: Literal["list"] = "list"


class DeletedObject(msgspec.Struct):
    id: str
    object: str
    deleted: bool


class FileObject(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: FilePurpose
    status: Literal["uploaded", "processed", "error"]
    status_details: str | None = None
    expires_at: int | None = None
