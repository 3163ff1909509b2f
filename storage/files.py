"""Metadata of uploaded files."""

import time

import msgspec

from contract.literals import DataFormat, FilePurpose, FileStatus
from storage.database import Database
from storage.records import Table


class FileRecord(msgspec.Struct, kw_only=True):
    id: str
    project: str
    filename: str
    purpose: FilePurpose
    bytes: int
    created_at: int
    expires_at: int | None = None
    status: FileStatus
    status_details: str | None = None
    data_format: DataFormat | None = None
    example_count: int | None = None


FILES = Table("files", FileRecord)
# A file that is neither deleted nor past its expiry (the sweep may not have come yet); `?` is now.
LIVE = "deleted = 0 AND (expires_at IS NULL OR expires_at > ?)"


class FileRepository:
    def __init__(self, db: Database):
        self.db = db

    def insert(self, record: FileRecord) -> None:
        FILES.insert(self.db, record)

    def get(self, project: str, file_id: str) -> FileRecord | None:
        return FILES.one(self.db, f"WHERE id = ? AND project = ? AND {LIVE}", (file_id, project, int(time.time())))

    def get_live(self, file_id: str) -> FileRecord | None:
        """A file neither deleted nor expired, whatever its project (for the worker API and housekeeping)."""
        return FILES.one(self.db, f"WHERE id = ? AND {LIVE}", (file_id, int(time.time())))

    def project_bytes(self, project: str) -> int:
        """What the project's files hold, in bytes (those deleted or expired not counted)."""
        row = self.db.one(f"SELECT coalesce(sum(bytes), 0) FROM files WHERE project = ? AND {LIVE}",
                          (project, int(time.time())))
        return row[0] if row else 0

    def expired(self) -> list[FileRecord]:
        """Files past their `expires_at`, not yet deleted."""
        return FILES.all(self.db, "WHERE expires_at IS NOT NULL AND deleted = 0 AND expires_at <= ?",
                         (int(time.time()),))

    def live_ids(self) -> set[str]:
        return {row["id"] for row in self.db.all("SELECT id FROM files WHERE deleted = 0")}

    def cursor_seq(self, project: str, file_id: str) -> int | None:
        """The position of `file_id` in the listing order, deleted files included."""
        row = self.db.one("SELECT seq FROM files WHERE id = ? AND project = ?", (file_id, project))
        return row["seq"] if row else None

    def list_page(
        self, project: str, purpose: str | None, after_seq: int | None, limit: int, descending: bool
    ) -> tuple[list[FileRecord], bool]:
        where = f"project = ? AND {LIVE}"
        params: list = [project, int(time.time())]
        if purpose is not None:
            where += " AND purpose = ?"
            params.append(purpose)
        return FILES.page(self.db, where, params, after_seq, limit, descending)

    def mark_deleted(self, project: str, file_id: str) -> bool:
        cursor = self.db.execute(
            "UPDATE files SET deleted = 1 WHERE id = ? AND project = ? AND deleted = 0", (file_id, project)
        )
        return cursor.rowcount == 1

    def set_validation_result(
        self, file_id: str, status: FileStatus, details: str | None, data_format: DataFormat | None,
        example_count: int | None,
    ) -> None:
        self.db.execute(
            "UPDATE files SET status = ?, status_details = ?, data_format = ?, example_count = ? WHERE id = ?",
            (status, details, data_format, example_count, file_id),
        )

    def awaiting_validation(self) -> list[FileRecord]:
        return FILES.all(self.db, "WHERE status = 'uploaded' AND deleted = 0 ORDER BY seq")
