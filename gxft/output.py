"""How the CLI prints: aligned tables for people, JSON (`--json`) for scripts, progress bars on stderr."""

import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, BinaryIO

from tqdm import tqdm


def printable(text: str, newlines: bool = False) -> str:
    """Text from a server or a model, safe to print: control characters (which could move the cursor,
    clear the screen or ring) and U+FFFD (bytes that did not decode) come out as escapes such as
    `\\x08`, so what shows is what was sent. `newlines` keeps line breaks and tabs as they are."""
    return "".join(
        char if (char.isprintable() and char != "\ufffd") or (newlines and char in "\n\t")
        else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


def to_plain(value: Any) -> Any:
    """An openai SDK object (pydantic), a msgspec Struct or plain data, as JSON-ready data."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [to_plain(item) for item in value]
    return value


def print_json(value: Any) -> None:
    print(json.dumps(to_plain(value), indent=2))


def timestamp(seconds: int | None) -> str:
    if not seconds:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def print_table(rows: Iterable[dict[str, Any]], columns: list[str]) -> None:
    rows = [{column: "-" if row.get(column) is None else printable(str(row[column])) for column in columns}
            for row in rows]
    if not rows:
        print("(none)")
        return
    widths = {column: max(len(column), *(len(row[column]) for row in rows)) for column in columns}
    print("  ".join(column.upper().ljust(widths[column]) for column in columns).rstrip())
    for row in rows:
        print("  ".join(row[column].ljust(widths[column]) for column in columns).rstrip())


def progress(total: float | None, description: str, unit: str = "it", **options) -> tqdm:
    """A bar on stderr, so that stdout stays clean for results and `--json`."""
    return tqdm(total=total, desc=description, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=True,
                **options)


class ProgressReader:
    """A file whose reads advance a progress bar: an upload's progress is how much of it was read."""

    def __init__(self, handle: BinaryIO, bar: tqdm):
        self._handle = handle
        self._bar = bar
        self.name = handle.name

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._bar.update(len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)
