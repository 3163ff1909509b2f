"""Metadata of fine-tuning jobs, their events and their checkpoints."""

import sqlite3
import time
from typing import Any

import msgspec

from contract.ids import new_id
from contract.literals import TERMINAL_STATUSES, EventLevel, EventType, JobStatus, Method, WeightsKind
from storage.database import Database, page_query

_json_encode = msgspec.json.encode
_json_decode = msgspec.json.decode


class JobRecord(msgspec.Struct, kw_only=True):
    id: str
    project: str
    model: str  # as the user named it: a base model, an alias, or a fine-tuned model it continues
    base_model: str  # the registry id of the base model it trains on
    parent_checkpoint: str | None = None  # the checkpoint whose weights the job starts from
    training_file: str
    validation_file: str | None
    status: JobStatus
    created_at: int
    finished_at: int | None = None
    seed: int
    suffix: str | None
    model_name_id: str
    method_type: Method
    hyperparameters: dict[str, Any]
    resolved: dict[str, Any] | None = None
    metadata: dict[str, str] | None
    integrations: list[Any]
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    trained_steps: int = 0
    total_steps: int | None = None
    estimated_finish: int | None = None
    error: dict[str, Any] | None = None
    result_files: list[str] = []
    worker_id: str | None = None
    lease_expires_at: float | None = None


class EventRecord(msgspec.Struct, kw_only=True):
    id: str
    job_id: str
    created_at: int
    level: EventLevel
    message: str
    type: EventType
    data: Any = None


class CheckpointRecord(msgspec.Struct, kw_only=True):
    id: str
    job_id: str
    created_at: int
    step_number: int
    fine_tuned_model_checkpoint: str
    metrics: dict[str, Any]
    result_files: list[str]
    weights: WeightsKind
    state_blob: str | None = None


_JSON_COLUMNS = {"hyperparameters", "resolved", "metadata", "integrations", "error", "result_files", "data", "metrics"}


def _column_value(name: str, value: Any) -> Any:
    return _json_encode(value).decode() if name in _JSON_COLUMNS and value is not None else value


def _to_row(record: msgspec.Struct) -> dict[str, Any]:
    return {name: _column_value(name, getattr(record, name)) for name in record.__struct_fields__}


def _from_row(cls: type[msgspec.Struct], row: sqlite3.Row) -> Any:
    values = {}
    for name in cls.__struct_fields__:
        value = row[name]
        values[name] = _json_decode(value) if name in _JSON_COLUMNS and value is not None else value
    return cls(**values)


def _insert(db: Database, table: str, record: msgspec.Struct) -> None:
    row = _to_row(record)
    db.execute(
        f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join(':' + name for name in row)})", row
    )


class JobRepository:
    def __init__(self, db: Database):
        self.db = db

    # Jobs

    def insert(self, job: JobRecord) -> None:
        _insert(self.db, "jobs", job)

    def get(self, job_id: str, project: str | None = None) -> JobRecord | None:
        if project is None:
            row = self.db.one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        else:
            row = self.db.one("SELECT * FROM jobs WHERE id = ? AND project = ?", (job_id, project))
        return _from_row(JobRecord, row) if row else None

    def update(self, job_id: str, *, if_status: tuple[JobStatus, ...] | None = None, held_by: str | None = None,
               if_unheld: bool = False, **changes: Any) -> bool:
        """Apply `changes` to the job, only while it is in one of `if_status` (when given), held by the
        worker `held_by` (when given) or held by no worker (`if_unheld`). Answers whether it changed."""
        row = {name: _column_value(name, value) for name, value in changes.items()}
        assignments = ", ".join(f"{name} = :{name}" for name in row)
        guards = {"job_id": job_id}
        where = "id = :job_id"
        if if_status is not None:
            where += f" AND status IN ({', '.join(f':if_status_{i}' for i in range(len(if_status)))})"
            guards.update({f"if_status_{i}": status for i, status in enumerate(if_status)})
        if held_by is not None:
            where += " AND worker_id = :held_by"
            guards["held_by"] = held_by
        if if_unheld:
            where += " AND worker_id IS NULL"
        cursor = self.db.execute(f"UPDATE jobs SET {assignments} WHERE {where}", {**row, **guards})
        return cursor.rowcount == 1

    def cursor_seq(self, project: str, job_id: str) -> int | None:
        row = self.db.one("SELECT seq FROM jobs WHERE id = ? AND project = ?", (job_id, project))
        return row["seq"] if row else None

    def list_page(
        self, project: str, metadata: dict[str, str] | None, metadata_null: bool, after_seq: int | None, limit: int
    ) -> tuple[list[JobRecord], bool]:
        where = "project = ?"
        params: list[Any] = [project]
        if metadata_null:
            where += " AND metadata IS NULL"
        for key, value in (metadata or {}).items():
            where += " AND json_extract(metadata, ?) = ?"
            params += ['$."' + key.replace('"', '""') + '"', value]
        rows, has_more = page_query(self.db, "jobs", where, params, after_seq, limit)
        return [_from_row(JobRecord, row) for row in rows], has_more

    def expired_leases(self, now: float) -> list[JobRecord]:
        rows = self.db.all(
            "SELECT * FROM jobs WHERE status = 'running' AND lease_expires_at IS NOT NULL AND lease_expires_at < ?",
            (now,),
        )
        return [_from_row(JobRecord, row) for row in rows]

    def paused_with_expired_lease(self, now: float) -> list[str]:
        rows = self.db.all(
            "SELECT id FROM jobs WHERE status = 'paused' AND worker_id IS NOT NULL AND lease_expires_at < ?", (now,)
        )
        return [row["id"] for row in rows]

    def unfinished_ids(self) -> set[str]:
        placeholders = ", ".join("?" for _ in TERMINAL_STATUSES)
        return {row["id"] for row in self.db.all(f"SELECT id FROM jobs WHERE status NOT IN ({placeholders})",
                                                  TERMINAL_STATUSES)}

    def queued(self) -> list[JobRecord]:
        rows = self.db.all("SELECT * FROM jobs WHERE status = 'queued' ORDER BY seq")
        return [_from_row(JobRecord, row) for row in rows]

    # Events

    def add_event(
        self, job_id: str, message: str, *, level: EventLevel = "info", type: EventType = "message", data: Any = None,
        created_at: int | None = None,
    ) -> EventRecord:
        event = EventRecord(
            id=new_id("ftevent-"),
            job_id=job_id,
            created_at=created_at or int(time.time()),
            level=level,
            message=message,
            type=type,
            data=data,
        )
        _insert(self.db, "job_events", event)
        return event

    def event_cursor_seq(self, job_id: str, event_id: str) -> int | None:
        row = self.db.one("SELECT seq FROM job_events WHERE id = ? AND job_id = ?", (event_id, job_id))
        return row["seq"] if row else None

    def events_page(self, job_id: str, after_seq: int | None, limit: int) -> tuple[list[EventRecord], bool]:
        rows, has_more = page_query(self.db, "job_events", "job_id = ?", [job_id], after_seq, limit)
        return [_from_row(EventRecord, row) for row in rows], has_more

    # Checkpoints

    def add_checkpoint(self, checkpoint: CheckpointRecord) -> None:
        _insert(self.db, "checkpoints", checkpoint)

    def get_checkpoint(self, job_id: str, checkpoint_id: str) -> CheckpointRecord | None:
        row = self.db.one(
            "SELECT * FROM checkpoints WHERE id = ? AND job_id = ? AND deleted = 0", (checkpoint_id, job_id)
        )
        return _from_row(CheckpointRecord, row) if row else None

    def checkpoint_cursor_seq(self, job_id: str, checkpoint_id: str) -> int | None:
        row = self.db.one("SELECT seq FROM checkpoints WHERE id = ? AND job_id = ?", (checkpoint_id, job_id))
        return row["seq"] if row else None

    def checkpoints_page(self, job_id: str, after_seq: int | None, limit: int) -> tuple[list[CheckpointRecord], bool]:
        rows, has_more = page_query(self.db, "checkpoints", "job_id = ? AND deleted = 0", [job_id], after_seq, limit)
        return [_from_row(CheckpointRecord, row) for row in rows], has_more

    def live_checkpoints(self, job_id: str) -> list[CheckpointRecord]:
        """Newest first."""
        rows = self.db.all(
            "SELECT * FROM checkpoints WHERE job_id = ? AND deleted = 0 ORDER BY seq DESC", (job_id,)
        )
        return [_from_row(CheckpointRecord, row) for row in rows]

    def live_checkpoint(self, checkpoint_id: str) -> CheckpointRecord | None:
        row = self.db.one("SELECT * FROM checkpoints WHERE id = ? AND deleted = 0", (checkpoint_id,))
        return _from_row(CheckpointRecord, row) if row else None

    def checkpoint_job_id(self, checkpoint_id: str) -> str | None:
        """The job that made a checkpoint, deleted or not."""
        row = self.db.one("SELECT job_id FROM checkpoints WHERE id = ?", (checkpoint_id,))
        return row["job_id"] if row else None

    def mark_checkpoint_deleted(self, checkpoint_id: str) -> None:
        self.db.execute("UPDATE checkpoints SET deleted = 1 WHERE id = ?", (checkpoint_id,))

    def model_checkpoint(self, project: str, name: str) -> CheckpointRecord | None:
        """The live checkpoint called `name` of a succeeded job in `project`: a model that can be served."""
        row = self.db.one(
            "SELECT checkpoints.* FROM checkpoints JOIN jobs ON jobs.id = checkpoints.job_id"
            " WHERE fine_tuned_model_checkpoint = ? AND deleted = 0 AND project = ? AND jobs.status = 'succeeded'",
            (name, project),
        )
        return _from_row(CheckpointRecord, row) if row else None

    def model_checkpoints(self, project: str) -> list[CheckpointRecord]:
        """Every servable checkpoint of `project`, oldest first."""
        rows = self.db.all(
            "SELECT checkpoints.* FROM checkpoints JOIN jobs ON jobs.id = checkpoints.job_id"
            " WHERE deleted = 0 AND project = ? AND jobs.status = 'succeeded' ORDER BY checkpoints.seq",
            (project,),
        )
        return [_from_row(CheckpointRecord, row) for row in rows]

    def live_state_blobs(self) -> set[str]:
        rows = self.db.all("SELECT state_blob FROM checkpoints WHERE deleted = 0 AND state_blob IS NOT NULL")
        return {row["state_blob"] for row in rows}
