"""The one owner of stored files: a file's record and its blob are created, adopted and deleted here,
together, whether the file is an upload, a job's result or an export.

The order of each pair of writes is what makes a crash harmless: a blob is in place before its
record is inserted, and a record is marked deleted before its blob goes. A crash between the two
leaves a blob that no live record names, which the start-up sweep removes (server/jobs/results.py).
"""

import asyncio
import time
import unicodedata
from pathlib import Path
from typing import BinaryIO

from contract.ids import new_id
from contract.literals import FilePurpose, UploadPurpose
from server.errors import invalid_request, quota_exceeded
from server.protocol import FileUploadFields
from storage.blobs import BlobStore, BlobWriter
from storage.files import FileRecord, FileRepository

MAX_FILENAME_CHARS = 255


def display_name(raw: str, param: str = "file") -> str:
    """The name to show for a file (never used on disk). A path keeps its last part, as the SDKs send it:
    `openai api files.create -f data/train.jsonl` of openai-python up to 2.34 sends the path as typed."""
    name = raw.strip().replace("\\", "/").rsplit("/", 1)[-1].strip()
    if any(unicodedata.category(char) == "Cc" for char in name):
        raise invalid_request("The file name contains control characters.", param=param, code="invalid_filename")
    if len(name) > MAX_FILENAME_CHARS:
        raise invalid_request(
            f"The file name is longer than {MAX_FILENAME_CHARS} characters.", param=param, code="invalid_filename"
        )
    if name in (".", ".."):
        raise invalid_request(f"{name!r} is not a file name.", param=param, code="invalid_filename")
    return name or "upload"


async def commit_blob(writer: BlobWriter) -> None:
    # fsync of a large file can take a while: keep it off the event loop.
    await asyncio.to_thread(writer.commit)


class FileStore:
    def __init__(self, records: FileRepository, blobs: BlobStore, quota_bytes: int = 0):
        self.records = records
        self.blobs = blobs
        self.quota_bytes = quota_bytes  # per project, of uploads; 0: none

    def get(self, project: str, file_id: str) -> FileRecord | None:
        """The project's file, unless it was deleted or has expired."""
        return self.records.get(project, file_id)

    def get_live(self, file_id: str) -> FileRecord | None:
        """A file not deleted, whatever its project (for the worker API and housekeeping)."""
        return self.records.get_live(file_id)

    def content_path(self, file_id: str) -> Path:
        return self.blobs.path(file_id)

    def open_content(self, file_id: str) -> BinaryIO | None:
        """The file's content, opened now (a later delete cannot cut it short); None once it is gone."""
        return self.blobs.open(file_id)

    def new_upload(self) -> BlobWriter:
        """The blob of an upload about to stream in; its id becomes the file's id."""
        return self.blobs.writer(new_id("file-"))

    async def store_upload(self, project: str, writer: BlobWriter, filename: str,
                           fields: FileUploadFields) -> FileRecord:
        """An upload received whole into `writer` becomes a file, or is refused before anything is kept."""
        self.refuse_upload(project, filename, fields.purpose, writer.size)
        await commit_blob(writer)
        return self.record_upload(project, writer.blob_id, writer.size, filename, fields.purpose,
                                  fields.expires_after_seconds)

    def refuse_upload(self, project: str, filename: str, purpose: str, size: int, param: str = "file") -> None:
        """Raise the answer to an upload that cannot become a file: a fine-tuning file without its extension,
        or one past the project's quota."""
        if purpose == "fine-tune" and not filename.lower().endswith(".jsonl"):
            raise invalid_request(
                f"Invalid file format for fine-tuning: {filename!r}. Fine-tuning files must be JSONL "
                "files with a .jsonl extension.",
                param=param,
            )
        if self.quota_bytes and self.records.project_bytes(project) + size > self.quota_bytes:
            raise quota_exceeded(
                f"This upload of {size} bytes would take the project's files past its quota of "
                f"{self.quota_bytes} bytes; delete files it no longer needs, then upload again."
            )

    def record_upload(self, project: str, blob_id: str, size: int, filename: str, purpose: UploadPurpose,
                      expires_after_seconds: int | None) -> FileRecord:
        """The record of an upload whose blob `blob_id` is committed."""
        created_at = int(time.time())
        record = FileRecord(
            id=blob_id, project=project, filename=filename, purpose=purpose, bytes=size, created_at=created_at,
            expires_at=created_at + expires_after_seconds if expires_after_seconds else None,
            # A fine-tuning file is validated in the background (server/files/validation.py).
            status="uploaded" if purpose == "fine-tune" else "processed",
        )
        self.records.insert(record)
        return record

    def adopt_blob(self, project: str, blob_id: str, filename: str,
                   purpose: FilePurpose = "fine-tune-results", folder: str | None = None) -> FileRecord:
        """A committed blob (a worker's staged result) becomes a file, its name under `folder` if one is given;
        call it inside the transaction that records what the file belongs to, so that a failed transaction
        leaves only an orphan blob."""
        name = display_name(filename)
        record = FileRecord(
            id=new_id("file-"), project=project, filename=f"{folder}/{name}" if folder else name, purpose=purpose,
            bytes=self.blobs.size(blob_id), created_at=int(time.time()), status="processed",
        )
        self.blobs.rename(blob_id, record.id)
        self.records.insert(record)
        return record

    def adopt_paths(self, project: str, paths: list[Path]) -> list[FileRecord]:
        """Finished files written under the blob store's temp folder (an export) become files."""
        records = []
        for path in paths:
            record = FileRecord(
                id=new_id("file-"), project=project, filename=path.name, purpose="fine-tune-results",
                bytes=path.stat().st_size, created_at=int(time.time()), status="processed",
            )
            self.blobs.adopt(record.id, path)
            self.records.insert(record)
            records.append(record)
        return records

    def delete(self, record: FileRecord) -> None:
        if self.records.mark_deleted(record.project, record.id):
            self.blobs.delete(record.id)

    def delete_live(self, file_id: str) -> None:
        """Delete a file by id, whatever its project, if it is still there."""
        if (record := self.records.get_live(file_id)) is not None:
            self.delete(record)

    def sweep_expired(self) -> int:
        """Delete every file past its `expires_at`, record and blob; answers how many went."""
        expired = self.records.expired()
        for record in expired:
            self.delete(record)
        return len(expired)

    def live_ids(self) -> set[str]:
        return self.records.live_ids()
