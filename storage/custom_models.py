"""Custom models (Nebius's `/v0/models`): a deployed name for a fine-tuned checkpoint's LoRA adapter."""

import msgspec

from storage.database import Database
from storage.records import Table


class CustomModelRecord(msgspec.Struct, kw_only=True):
    name: str  # the full name it is called by: `<base model>-LoRa:<short name>-<4 characters>`
    project: str
    base_model: str  # as the request named it (an alias stays an alias)
    source: str  # as the request gave it: `ftjob-…:ftckpt_…`, a fine-tuned model's name or a file id
    description: str | None
    checkpoint_id: str
    job_id: str
    created_at: int


CUSTOM_MODELS = Table("custom_models", CustomModelRecord)


class CustomModelRepository:
    def __init__(self, db: Database):
        self.db = db

    def insert(self, record: CustomModelRecord) -> None:
        CUSTOM_MODELS.insert(self.db, record)

    def get(self, project: str, name: str) -> CustomModelRecord | None:
        """By its full name, or by the short one after `-LoRa:`."""
        return CUSTOM_MODELS.one(
            self.db, "WHERE project = ? AND deleted = 0 AND (name = ? OR substr(name, instr(name, '-LoRa:') + 6) = ?)",
            (project, name, name),
        )

    def list(self, project: str) -> list[CustomModelRecord]:
        return CUSTOM_MODELS.all(self.db, "WHERE project = ? AND deleted = 0 ORDER BY seq", (project,))

    def delete(self, name: str) -> None:
        self.db.execute("UPDATE custom_models SET deleted = 1 WHERE name = ?", (name,))
