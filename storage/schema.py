"""The one owner of the database schema: an ordered list of migrations.

Each entry runs once, in order, inside a transaction; `PRAGMA user_version` records how many
have run. Append new migrations; never edit one that has shipped.
"""

import sqlite3

MIGRATIONS: list[str] = [
    # 1: uploaded files. `seq` gives a total insertion order for cursor pagination; deleted rows
    # stay as tombstones so that a cursor pointing at them still resolves.
    """
    CREATE TABLE files (
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        id             TEXT    NOT NULL UNIQUE,
        project        TEXT    NOT NULL,
        filename       TEXT    NOT NULL,
        purpose        TEXT    NOT NULL,
        bytes          INTEGER NOT NULL,
        created_at     INTEGER NOT NULL,
        expires_at     INTEGER,
        status         TEXT    NOT NULL,
        status_details TEXT,
        data_format    TEXT,
        example_count  INTEGER,
        deleted        INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX files_by_project ON files (project, deleted, seq);
    """,
]


def migrate(connection: sqlite3.Connection) -> None:
    (applied,) = connection.execute("PRAGMA user_version").fetchone()
    for number, script in enumerate(MIGRATIONS[applied:], start=applied + 1):
        # executescript commits any open transaction, so wrap each migration explicitly.
        connection.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
