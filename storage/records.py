"""A table's rows as msgspec records, and back.

Reading a row, SQLite writes it as one JSON object in the record's shape (the JSON columns embedded
as they are stored) and msgspec decodes that into the record in one call, in C. A Python loop over
the columns, decoding each JSON cell on its own, took most of a job list's time: this is the read
path of every poll (job retrieve, job and event lists).

Writing, each field is its column, the JSON columns encoded by msgspec.
"""

from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

import msgspec

from storage.database import Database

R = TypeVar("R", bound=msgspec.Struct)


def metadata_filter(metadata: dict[str, str]) -> tuple[str, list[str]]:
    """`AND …` conditions (and their parameters) keeping the rows whose JSON `metadata` holds every pair."""
    where, params = "", []
    for key, value in metadata.items():
        where += " AND json_extract(metadata, ?) = ?"
        params += ['$."' + key.replace('"', '""') + '"', value]
    return where, params


class Table(Generic[R]):
    def __init__(self, name: str, record_type: type[R], json_columns: frozenset[str] = frozenset()):
        self.name = name
        self.columns: tuple[str, ...] = record_type.__struct_fields__
        self.json_columns = json_columns
        # Columns are named with their table, so that the same SELECT serves queries that join another table.
        fields = ", ".join(
            f"'{column}', " + (f"json({name}.{column})" if column in json_columns else f"{name}.{column}")
            for column in self.columns
        )
        self.as_json = f"json_object({fields})"  # the expression that writes a row as the record's JSON
        self.select = f"SELECT {self.as_json} FROM {name}"
        self._decoder = msgspec.json.Decoder(record_type)

    def value(self, column: str, value: Any) -> Any:
        """A field's value as its column holds it."""
        return msgspec.json.encode(value).decode() if column in self.json_columns and value is not None else value

    def insert(self, db: Database, record: R) -> None:
        row = {column: self.value(column, getattr(record, column)) for column in self.columns}
        db.execute(f"INSERT INTO {self.name} ({', '.join(row)}) VALUES ({', '.join(':' + c for c in row)})", row)

    def decode(self, json_row: str) -> R:
        return self._decoder.decode(json_row)

    def one(self, db: Database, rest: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> R | None:
        """The record of the first row of `SELECT … FROM table {rest}` (joins, WHERE, ORDER BY)."""
        row = db.one(f"{self.select} {rest}", params)
        return self._decoder.decode(row[0]) if row else None

    def all(self, db: Database, rest: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[R]:
        return [self._decoder.decode(row[0]) for row in db.all(f"{self.select} {rest}", params)]

    def page(self, db: Database, where: str, params: list[Any], after_seq: int | None, limit: int,
             descending: bool = True) -> tuple[list[R], bool]:
        """One page in `seq` order, starting strictly after `after_seq`, and whether more follow (one extra
        row is read to know)."""
        rest, values = self._page_query(where, params, after_seq, limit, descending)
        records = self.all(db, rest, values)
        return records[:limit], len(records) > limit

    def key_page(self, db: Database, keys: str, where: str, params: list[Any], after_seq: int | None, limit: int,
                 descending: bool = True) -> tuple[list[tuple], bool]:
        """As `page`, but only the `keys` columns of each row (say "id, row_version"), as tuples."""
        rest, values = self._page_query(where, params, after_seq, limit, descending)
        rows = [tuple(row) for row in db.all(f"SELECT {keys} FROM {self.name} {rest}", values)]
        return rows[:limit], len(rows) > limit

    def _page_query(self, where: str, params: list[Any], after_seq: int | None, limit: int,
                    descending: bool) -> tuple[str, tuple]:
        if after_seq is not None:
            where += f" AND {self.name}.seq < ?" if descending else f" AND {self.name}.seq > ?"
            params = [*params, after_seq]
        direction = "DESC" if descending else "ASC"
        return f"WHERE {where} ORDER BY {self.name}.seq {direction} LIMIT ?", (*params, limit + 1)
