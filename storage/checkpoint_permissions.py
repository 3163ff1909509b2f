"""Grants of a checkpoint to other projects than its own."""

import msgspec

from storage.database import Database
from storage.records import Table


class PermissionRecord(msgspec.Struct, kw_only=True):
    id: str
    checkpoint_id: str
    project_id: str
    created_at: int


PERMISSIONS = Table("checkpoint_permissions", PermissionRecord)
# The checkpoints shared with the project `?`, for a WHERE that selects checkpoints.
SHARED_WITH = ("checkpoints.id IN "
               "(SELECT checkpoint_id FROM checkpoint_permissions WHERE project_id = ? AND deleted = 0)")


class PermissionRepository:
    def __init__(self, db: Database):
        self.db = db

    def insert(self, record: PermissionRecord) -> None:
        PERMISSIONS.insert(self.db, record)

    def granted(self, checkpoint_id: str, project_id: str) -> PermissionRecord | None:
        return PERMISSIONS.one(self.db, "WHERE checkpoint_id = ? AND project_id = ? AND deleted = 0",
                               (checkpoint_id, project_id))

    def get(self, checkpoint_id: str, permission_id: str) -> PermissionRecord | None:
        return PERMISSIONS.one(self.db, "WHERE checkpoint_id = ? AND id = ? AND deleted = 0",
                               (checkpoint_id, permission_id))

    def cursor_seq(self, checkpoint_id: str, permission_id: str) -> int | None:
        row = self.db.one("SELECT seq FROM checkpoint_permissions WHERE checkpoint_id = ? AND id = ?",
                          (checkpoint_id, permission_id))
        return row["seq"] if row else None

    def page(self, checkpoint_id: str, project_id: str | None, after_seq: int | None, limit: int,
             descending: bool) -> tuple[list[PermissionRecord], bool]:
        where, params = "checkpoint_id = ? AND deleted = 0", [checkpoint_id]
        if project_id is not None:
            where += " AND project_id = ?"
            params.append(project_id)
        return PERMISSIONS.page(self.db, where, params, after_seq, limit, descending)

    def revoke(self, permission_id: str) -> None:
        self.db.execute("UPDATE checkpoint_permissions SET deleted = 1 WHERE id = ?", (permission_id,))
