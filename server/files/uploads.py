"""Uploads in parts, as OpenAI's Uploads API: a file of up to 8 GiB sent as parts of up to 64 MiB, in
parallel and in any order, then joined in the order `complete` lists them into an ordinary file.

Each part streams to disk as it arrives and is committed (fsynced) before it is answered, so a server
killed mid-upload loses only the part it was receiving. Nothing of an upload is kept in memory. An
upload that ends (completed, cancelled, or expired an hour after it was created) leaves no part behind:
their records go in the transaction that ends it, their blobs right after, and a crash between the two
leaves blobs that no record names, which the start-up sweep removes (server/jobs/results.py).
"""

import asyncio
import hashlib
import time

import msgspec

from contract.ids import new_id
from contract.literals import UploadStatus
from server.errors import APIError, invalid_request, not_found
from server.files.store import FileStore, commit_blob, display_name
from server.protocol import MAX_UPLOAD_BYTES, CompleteUploadRequest, CreateUploadRequest, FileExpiresAfter
from storage.blobs import COPY_CHUNK_BYTES, BlobWriter
from storage.files import FileRecord
from storage.uploads import PartRecord, UploadRecord, UploadRepository


class Uploads:
    def __init__(self, records: UploadRepository, files: FileStore, expiry_seconds: int):
        self.records = records
        self.files = files
        self.expiry_seconds = expiry_seconds

    def create(self, project: str, body: CreateUploadRequest) -> UploadRecord:
        filename = display_name(body.filename, param="filename")
        self.files.refuse_upload(project, filename, body.purpose, body.bytes, param="filename")
        now = int(time.time())
        record = UploadRecord(
            id=new_id("upload_"), project=project, filename=filename, purpose=body.purpose, bytes=body.bytes,
            mime_type=body.mime_type, created_at=now, expires_at=now + self.expiry_seconds,
            file_expires_after=body.expires_after.seconds if isinstance(body.expires_after, FileExpiresAfter) else None,
            status="pending",
        )
        self.records.insert(record)
        return record

    def get(self, project: str, upload_id: str) -> UploadRecord:
        """The project's upload; one past its expiry is expired now, whether or not the sweep has come."""
        record = self.records.get(project, upload_id)
        if record is None:
            raise not_found("upload", upload_id, param="upload_id")
        if record.status == "pending" and record.expires_at <= time.time() and self._end(record, "expired"):
            return msgspec.structs.replace(record, status="expired")
        return record

    def open(self, project: str, upload_id: str) -> UploadRecord:
        """The project's upload, if it still takes parts and completion."""
        record = self.get(project, upload_id)
        if record.status != "pending":
            raise self._ended(record)
        return record

    def new_part(self) -> BlobWriter:
        """The blob of a part about to stream in; its id becomes the part's id."""
        return self.files.blobs.writer(new_id("part_"))

    async def add_part(self, upload: UploadRecord, writer: BlobWriter) -> PartRecord:
        """A part received whole into `writer` is kept, unless its upload ended while it streamed in."""
        if self.records.stored_bytes(upload.id) + writer.size > MAX_UPLOAD_BYTES:
            raise invalid_request(f"Upload {upload.id} would hold more than {MAX_UPLOAD_BYTES} bytes of parts with "
                                  "this one; an upload holds at most 8 GiB.", param="data", code="upload_too_large")
        await commit_blob(writer)
        part = PartRecord(id=writer.blob_id, upload_id=upload.id, bytes=writer.size, created_at=int(time.time()))
        if not self.records.insert_part(part):
            self.files.blobs.delete(part.id)
            raise self._ended(self.get(upload.project, upload.id))
        return part

    async def complete(self, project: str, upload_id: str,
                       body: CompleteUploadRequest) -> tuple[UploadRecord, FileRecord]:
        upload = self.open(project, upload_id)
        parts = {part.id: part for part in self.records.parts(upload.id)}
        for part_id in body.part_ids:
            if part_id not in parts:
                raise invalid_request(f"{part_id[:100]!r} is not a part of upload {upload.id}.", param="part_ids")
        if len(set(body.part_ids)) != len(body.part_ids):
            raise invalid_request("A part is listed more than once in part_ids; list each part once, in order.",
                                  param="part_ids")
        size = sum(parts[part_id].bytes for part_id in body.part_ids)
        if size != upload.bytes:
            raise invalid_request(f"The parts listed hold {size} bytes, but upload {upload.id} was created for "
                                  f"{upload.bytes} bytes.", param="part_ids", code="upload_size_mismatch")
        self.files.refuse_upload(project, upload.filename, upload.purpose, size, param="filename")
        expected_md5 = body.md5 if isinstance(body.md5, str) else None
        with self.files.new_upload() as writer:
            try:
                md5 = await asyncio.to_thread(self._join, body.part_ids, writer, expected_md5 is not None)
            except FileNotFoundError:  # a cancel took the parts away while they were being joined
                raise self._ended(self.get(project, upload.id)) from None
            if expected_md5 is not None and md5 != expected_md5.strip().lower():
                raise invalid_request(f"The md5 of the parts listed is {md5}, not {expected_md5[:100]!r}: the bytes "
                                      "uploaded are not the ones expected. The parts are kept; upload the right "
                                      "ones and complete again.", param="md5", code="md5_mismatch")
            await commit_blob(writer)
        with self.records.db.transaction():
            part_ids = self.records.end(upload.id, "completed", file_id=writer.blob_id)
            file = None if part_ids is None else self.files.record_upload(
                project, writer.blob_id, size, upload.filename, upload.purpose, upload.file_expires_after)
        if part_ids is None or file is None:  # ended (another completion, a cancel) while the parts were joined
            self.files.blobs.delete(writer.blob_id)
            raise self._ended(self.get(project, upload.id))
        self._delete_parts(part_ids)
        return msgspec.structs.replace(upload, status="completed", file_id=file.id), file

    def cancel(self, project: str, upload_id: str) -> UploadRecord:
        upload = self.open(project, upload_id)
        if not self._end(upload, "cancelled"):
            raise self._ended(self.get(project, upload.id))
        return msgspec.structs.replace(upload, status="cancelled")

    def sweep_expired(self) -> int:
        """Expire every pending upload past its `expires_at`, its parts deleted; answers how many."""
        return sum(self._end(record, "expired") for record in self.records.expired())

    def part_ids(self) -> set[str]:
        return self.records.part_ids()

    def _join(self, part_ids: list[str], writer: BlobWriter, with_md5: bool) -> str | None:
        """Copy the parts, in order, into `writer` (off the event loop: up to 8 GiB); answers their md5 when
        asked for, which means reading them here rather than letting the kernel copy them."""
        if not with_md5:
            for part_id in part_ids:
                writer.append_file(self.files.blobs.path(part_id))
            return None
        digest = hashlib.md5(usedforsecurity=False)
        for part_id in part_ids:
            with open(self.files.blobs.path(part_id), "rb") as part:
                while chunk := part.read(COPY_CHUNK_BYTES):
                    writer.write(chunk)
                    digest.update(chunk)
        return digest.hexdigest()

    def _end(self, upload: UploadRecord, status: UploadStatus) -> bool:
        with self.records.db.transaction():
            part_ids = self.records.end(upload.id, status)
        if part_ids is None:
            return False
        self._delete_parts(part_ids)
        return True

    def _delete_parts(self, part_ids: list[str]) -> None:
        for part_id in part_ids:
            self.files.blobs.delete(part_id)

    @staticmethod
    def _ended(upload: UploadRecord) -> APIError:
        return invalid_request(f"Upload {upload.id} is {upload.status}, so it takes no more parts and cannot be "
                               "completed or cancelled; create a new upload.", param="upload_id",
                               code="upload_not_pending")
