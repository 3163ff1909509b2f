"""Registered workers: the identity each worker's key stands for, and what it trains on."""

import msgspec

from contract.internal_api import Accelerator
from storage.database import Database
from storage.records import Table


class WorkerRecord(msgspec.Struct, kw_only=True):
    id: str
    key_hash: str  # SHA-256 of the worker's key, in hex; the key itself is never stored
    accelerator: Accelerator
    devices: list[str]
    registered_at: int


WORKERS = Table("workers", WorkerRecord, frozenset({"devices"}))


class WorkerRepository:
    def __init__(self, db: Database):
        self.db = db

    def insert(self, worker: WorkerRecord) -> None:
        WORKERS.insert(self.db, worker)

    def by_key_hash(self, key_hash: str) -> WorkerRecord | None:
        return WORKERS.one(self.db, "WHERE key_hash = ?", (key_hash,))
