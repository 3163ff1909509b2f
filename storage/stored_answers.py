"""Stored answers: chat completions made with `store: true` and stored responses, each kept with the input it
answered. Both are kept as the JSON they were sent and answered in, so what is read back is what was said."""

from typing import Any, Literal

import msgspec

from storage.database import Database
from storage.records import Table, metadata_filter

AnswerKind = Literal["chat.completion", "response"]


class StoredAnswerRecord(msgspec.Struct, kw_only=True):
    id: str  # the answer's own id: `chatcmpl-…` or `resp_…`
    project: str
    kind: AnswerKind
    model: str  # as the request named it
    created_at: int
    metadata: dict[str, str]
    input: msgspec.Raw  # the request's messages or input items
    answer: msgspec.Raw  # the answer object


STORED_ANSWERS = Table("stored_answers", StoredAnswerRecord, json_columns=frozenset({"metadata", "input", "answer"}))


class StoredAnswerRepository:
    def __init__(self, db: Database):
        self.db = db

    def insert(self, record: StoredAnswerRecord) -> None:
        STORED_ANSWERS.insert(self.db, record)

    def get(self, project: str, kind: AnswerKind, answer_id: str) -> StoredAnswerRecord | None:
        return STORED_ANSWERS.one(self.db, "WHERE id = ? AND project = ? AND kind = ?", (answer_id, project, kind))

    def cursor_seq(self, project: str, kind: AnswerKind, answer_id: str) -> int | None:
        row = self.db.one("SELECT seq FROM stored_answers WHERE id = ? AND project = ? AND kind = ?",
                          (answer_id, project, kind))
        return row["seq"] if row else None

    def page(self, project: str, kind: AnswerKind, model: str | None, metadata: dict[str, str], after_seq: int | None,
             limit: int, descending: bool) -> tuple[list[StoredAnswerRecord], bool]:
        where = "project = ? AND kind = ?"
        params: list[Any] = [project, kind]
        if model is not None:
            where += " AND model = ?"
            params.append(model)
        metadata_where, metadata_params = metadata_filter(metadata)
        where += metadata_where
        params += metadata_params
        return STORED_ANSWERS.page(self.db, where, params, after_seq, limit, descending)

    def update_metadata(self, answer_id: str, metadata: dict[str, str]) -> None:
        self.db.execute("UPDATE stored_answers SET metadata = ? WHERE id = ?",
                        (STORED_ANSWERS.value("metadata", metadata), answer_id))

    def delete(self, answer_id: str) -> None:
        self.db.execute("DELETE FROM stored_answers WHERE id = ?", (answer_id,))
