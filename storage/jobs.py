"""Metadata of fine-tuning jobs, their events and their checkpoints."""

import time
from typing import Any

import msgspec

from contract.ids import new_id
from contract.literals import TERMINAL_STATUSES, EventLevel, EventType, JobStatus, Method, WeightsKind
from storage.checkpoint_permissions import SHARED_WITH
from storage.database import Database, placeholders
from storage.records import Table, metadata_filter


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
    tags: list[str] = []
    from_checkpoint: dict[str, Any] | None = None  # Nebius's hf source; a continued job has parent_checkpoint
    grader: dict[str, Any] | None = None  # a reinforcement job's, as sent (contract/graders.py's shapes)
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


JOBS = Table("jobs", JobRecord, frozenset({"hyperparameters", "resolved", "metadata", "integrations", "tags",
                                           "from_checkpoint", "error", "result_files", "grader"}))
EVENTS = Table("job_events", EventRecord, frozenset({"data"}))
CHECKPOINTS = Table("checkpoints", CheckpointRecord, frozenset({"metrics", "result_files"}))
UNENDED = f"status NOT IN ({placeholders(len(TERMINAL_STATUSES))})"  # its values: TERMINAL_STATUSES


class JobRepository:
    def __init__(self, db: Database):
        self.db = db

    # Jobs

    def insert(self, job: JobRecord) -> None:
        JOBS.insert(self.db, job)

    def get(self, job_id: str, project: str | None = None) -> JobRecord | None:
        if project is None:
            return JOBS.one(self.db, "WHERE id = ?", (job_id,))
        return JOBS.one(self.db, "WHERE id = ? AND project = ?", (job_id, project))

    def update(self, job_id: str, *, if_status: tuple[JobStatus, ...] | None = None, held_by: str | None = None,
               if_unheld: bool = False, **changes: Any) -> bool:
        """Apply `changes` to the job, only while it is in one of `if_status` (when given), held by the
        worker `held_by` (when given) or held by no worker (`if_unheld`). Answers whether it changed."""
        row = {name: JOBS.value(name, value) for name, value in changes.items()}
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

    def version(self, job_id: str, project: str) -> int | None:
        """The job's row version (raised by every change), or None when the project has no such job."""
        row = self.db.one("SELECT row_version FROM jobs WHERE id = ? AND project = ?", (job_id, project))
        return row[0] if row else None

    def versioned(self, job_ids: list[str]) -> list[tuple[JobRecord, int]]:
        """The jobs, each with its row version."""
        rows = self.db.all(f"SELECT row_version, {JOBS.as_json} FROM jobs WHERE id IN ({placeholders(len(job_ids))})",
                           job_ids)
        return [(JOBS.decode(row[1]), row[0]) for row in rows]

    def list_page(
        self, project: str, metadata: dict[str, str] | None, metadata_null: bool, after_seq: int | None, limit: int
    ) -> tuple[list[tuple[str, int]], bool]:
        """The page's jobs as (id, row version), newest first."""
        where = "project = ?"
        params: list[Any] = [project]
        if metadata_null:
            where += " AND metadata IS NULL"
        metadata_where, metadata_params = metadata_filter(metadata or {})
        where += metadata_where
        params += metadata_params
        return JOBS.key_page(self.db, "id, row_version", where, params, after_seq, limit)

    def expired_leases(self, now: float) -> list[JobRecord]:
        return JOBS.all(self.db, "WHERE status = 'running' AND lease_expires_at IS NOT NULL AND lease_expires_at < ?",
                        (now,))

    def paused_with_expired_lease(self, now: float) -> list[str]:
        rows = self.db.all(
            "SELECT id FROM jobs WHERE status = 'paused' AND worker_id IS NOT NULL AND lease_expires_at < ?", (now,)
        )
        return [row["id"] for row in rows]

    def unfinished_ids(self) -> set[str]:
        return {row["id"] for row in self.db.all(f"SELECT id FROM jobs WHERE {UNENDED}", TERMINAL_STATUSES)}

    def active_count(self, project: str) -> int:
        """The project's jobs that have not ended."""
        row = self.db.one(f"SELECT count(*) FROM jobs WHERE project = ? AND {UNENDED}", (project, *TERMINAL_STATUSES))
        return row[0] if row else 0

    def queued(self) -> list[JobRecord]:
        return JOBS.all(self.db, "WHERE status = 'queued' ORDER BY seq")

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
        EVENTS.insert(self.db, event)
        return event

    def event_cursor_seq(self, job_id: str, event_id: str) -> int | None:
        row = self.db.one("SELECT seq FROM job_events WHERE id = ? AND job_id = ?", (event_id, job_id))
        return row["seq"] if row else None

    def events_page(self, job_id: str, after_seq: int | None, limit: int,
                    oldest_first: bool = False) -> tuple[list[str], bool]:
        """The ids of the page's events, newest first unless `oldest_first` (events never change, so an id
        names its content)."""
        rows, has_more = EVENTS.key_page(self.db, "id", "job_id = ?", [job_id], after_seq, limit,
                                         descending=not oldest_first)
        return [row[0] for row in rows], has_more

    def events(self, event_ids: list[str]) -> list[EventRecord]:
        return EVENTS.all(self.db, f"WHERE id IN ({placeholders(len(event_ids))})", event_ids)

    # Checkpoints

    def add_checkpoint(self, checkpoint: CheckpointRecord) -> None:
        CHECKPOINTS.insert(self.db, checkpoint)

    def get_checkpoint(self, job_id: str, checkpoint_id: str) -> CheckpointRecord | None:
        return CHECKPOINTS.one(self.db, "WHERE id = ? AND job_id = ? AND deleted = 0", (checkpoint_id, job_id))

    def checkpoint_cursor_seq(self, job_id: str, checkpoint_id: str) -> int | None:
        row = self.db.one("SELECT seq FROM checkpoints WHERE id = ? AND job_id = ?", (checkpoint_id, job_id))
        return row["seq"] if row else None

    def checkpoints_page(self, job_id: str, after_seq: int | None, limit: int,
                         oldest_first: bool = False) -> tuple[list[CheckpointRecord], bool]:
        return CHECKPOINTS.page(self.db, "job_id = ? AND deleted = 0", [job_id], after_seq, limit,
                                descending=not oldest_first)

    def live_checkpoints(self, job_id: str) -> list[CheckpointRecord]:
        """Newest first."""
        return CHECKPOINTS.all(self.db, "WHERE job_id = ? AND deleted = 0 ORDER BY seq DESC", (job_id,))

    def live_checkpoint(self, checkpoint_id: str) -> CheckpointRecord | None:
        return CHECKPOINTS.one(self.db, "WHERE id = ? AND deleted = 0", (checkpoint_id,))

    def checkpoint_with_file(self, file_id: str) -> CheckpointRecord | None:
        """The live checkpoint one of whose result files this is."""
        return CHECKPOINTS.one(self.db, "WHERE deleted = 0 AND EXISTS "
                               "(SELECT 1 FROM json_each(checkpoints.result_files) WHERE value = ?)", (file_id,))

    def checkpoint_job_id(self, checkpoint_id: str) -> str | None:
        """The job that made a checkpoint, deleted or not."""
        row = self.db.one("SELECT job_id FROM checkpoints WHERE id = ?", (checkpoint_id,))
        return row["job_id"] if row else None

    def mark_checkpoint_deleted(self, checkpoint_id: str) -> None:
        self.db.execute("UPDATE checkpoints SET deleted = 1 WHERE id = ?", (checkpoint_id,))

    def model_checkpoint(self, project: str | None, name: str, shared: bool = False) -> CheckpointRecord | None:
        """The live checkpoint called `name` of a succeeded job in `project` (any project: None), or shared with
        it when `shared`: a model that can be served."""
        where, params = "", [name]
        if project is not None:
            where = f" AND (project = ? OR {SHARED_WITH})" if shared else " AND project = ?"
            params += [project, project] if shared else [project]
        return CHECKPOINTS.one(
            self.db, "JOIN jobs ON jobs.id = checkpoints.job_id WHERE fine_tuned_model_checkpoint = ? "
            f"AND checkpoints.deleted = 0 AND jobs.status = 'succeeded'{where}", params,
        )

    def model_checkpoints(self, project: str) -> list[CheckpointRecord]:
        """Every servable checkpoint of `project` and those shared with it, oldest first."""
        return CHECKPOINTS.all(
            self.db, f"JOIN jobs ON jobs.id = checkpoints.job_id WHERE checkpoints.deleted = 0 AND (project = ? OR "
            f"{SHARED_WITH}) AND jobs.status = 'succeeded' ORDER BY checkpoints.seq", (project, project),
        )

    def live_state_blobs(self) -> set[str]:
        rows = self.db.all("SELECT state_blob FROM checkpoints WHERE deleted = 0 AND state_blob IS NOT NULL")
        return {row["state_blob"] for row in rows}
