"""Uploads sent in parts (OpenAI's Uploads API): an upload's record, and the record of each part it holds.

A part's bytes are the blob named by the part's id. Its record is inserted only while its upload is pending,
in one statement, so a part that lands after the upload completed, was cancelled or expired is refused, not
kept. When an upload ends, its parts' records go in the transaction that ends it; their blobs go after it.
"""

import time

import msgspec

from contract.literals import UploadPurpose, UploadStatus
from storage.database import Database
from storage.records import Table


class UploadRecord(msgspec.Struct, kw_only=True):
    id: str
    project: str
    filename: str
    purpose: UploadPurpose
    bytes: int  # as declared at creation; the parts listed at completion must add up to it
    mime_type: str
    created_at: int
    expires_at: int
    file_expires_after: int | None = None  # seconds, for the file the upload becomes
    status: UploadStatus
    file_id: str | None = None


class PartRecord(msgspec.Struct, kw_only=True):
    id: str
    upload_id: str
    bytes: int
    created_at: int


UPLOADS = Table("uploads", UploadRecord)
PARTS = Table("upload_parts", PartRecord)
# An upload that takes parts; `?` is now (the sweep may not have come since it expired).
OPEN = "status = 'pending' AND expires_at > ?"


class UploadRepository:
    def __init__(self, db: Database):
        self.db = db

    def insert(self, record: UploadRecord) -> None:
        UPLOADS.insert(self.db, record)

    def get(self, project: str, upload_id: str) -> UploadRecord | None:
        return UPLOADS.one(self.db, "WHERE id = ? AND project = ?", (upload_id, project))

    def insert_part(self, part: PartRecord) -> bool:
        """Record a part whose blob is committed; False (nothing recorded) when its upload no longer takes parts."""
        cursor = self.db.execute(
            f"INSERT INTO upload_parts (id, upload_id, bytes, created_at) SELECT ?, ?, ?, ? "
            f"WHERE EXISTS (SELECT 1 FROM uploads WHERE id = ? AND {OPEN})",
            (part.id, part.upload_id, part.bytes, part.created_at, part.upload_id, int(time.time())),
        )
        return cursor.rowcount == 1

    def parts(self, upload_id: str) -> list[PartRecord]:
        return PARTS.all(self.db, "WHERE upload_id = ? ORDER BY seq", (upload_id,))

    def stored_bytes(self, upload_id: str) -> int:
        row = self.db.one("SELECT coalesce(sum(bytes), 0) FROM upload_parts WHERE upload_id = ?", (upload_id,))
        return row[0] if row else 0

    def end(self, upload_id: str, status: UploadStatus, file_id: str | None = None) -> list[str] | None:
        """End a pending upload (call it inside a transaction): answers the ids of the parts whose records went,
        whose blobs the caller deletes once the transaction commits; None when the upload was not pending."""
        cursor = self.db.execute("UPDATE uploads SET status = ?, file_id = ? WHERE id = ? AND status = 'pending'",
                                 (status, file_id, upload_id))
        if cursor.rowcount != 1:
            return None
        part_ids = [row["id"] for row in self.db.all("SELECT id FROM upload_parts WHERE upload_id = ?", (upload_id,))]
        self.db.execute("DELETE FROM upload_parts WHERE upload_id = ?", (upload_id,))
        return part_ids

    def expired(self) -> list[UploadRecord]:
        """Pending uploads past their `expires_at`."""
        return UPLOADS.all(self.db, "WHERE status = 'pending' AND expires_at <= ?", (int(time.time()),))

    def part_ids(self) -> set[str]:
        """The parts of every pending upload: blobs that are not files but must stay."""
        return {row["id"] for row in self.db.all("SELECT id FROM upload_parts")}
