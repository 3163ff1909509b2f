"""File contents on disk: written while streaming, visible only once complete.

A blob is first written under `tmp/` and renamed into place when its writer commits, so a
crash or an aborted upload never leaves a partial blob under a real id. Blob names are always
server-generated ids: nothing a client sends becomes part of a path.
"""

import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

COPY_CHUNK_BYTES = 4 * 1024 * 1024
# copy_file_range's answers for "not between these files": the copy goes on through this process.
_NO_KERNEL_COPY = (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL)


class BlobWriter:
    """An open temporary file that becomes blob `blob_id` on `commit()`.

    Used as a context manager: leaving the block without a commit (an error, a refused upload)
    removes the temporary file, so nothing half-written stays behind.
    """

    def __init__(self, store: "BlobStore", blob_id: str):
        self._store = store
        self.blob_id = blob_id
        self.temp_path = store.temp_dir / f"{blob_id}.{secrets.token_hex(4)}"
        self._file = open(self.temp_path, "xb")
        self.size = 0
        self.committed = False

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if not self.committed:
            self.abort()

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self.size += len(data)

    def append_file(self, path: Path) -> None:
        """Append a whole file, in the kernel where the file system can (copy_file_range: twice as fast as
        reading and writing it here, and no copy passes through this process)."""
        self._file.flush()
        with open(path, "rb") as source:
            remaining = os.fstat(source.fileno()).st_size
            try:
                while remaining > 0 and (copied := os.copy_file_range(source.fileno(), self._file.fileno(), remaining)):
                    self.size += copied
                    remaining -= copied
            except OSError as exc:
                if exc.errno not in _NO_KERNEL_COPY:
                    raise
            self._file.seek(0, os.SEEK_END)  # the kernel moved the descriptor's offset, not the buffer's
            while remaining > 0 and (chunk := source.read(min(remaining, COPY_CHUNK_BYTES))):
                self.write(chunk)
                remaining -= len(chunk)

    def commit(self) -> Path:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except BaseException:  # a full disk often shows only here
            self.abort()
            raise
        self._file.close()
        final = self._store.path(self.blob_id)
        os.replace(self.temp_path, final)
        self.committed = True
        return final

    def abort(self) -> None:
        self._file.close()
        self.temp_path.unlink(missing_ok=True)


class BlobStore:
    def __init__(self, root: Path):
        self.root = root
        self.temp_dir = root / "tmp"
        self.root.mkdir(parents=True, exist_ok=True)
        # Anything left in tmp/ belongs to a write that never committed (a crash, a kill).
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        self.temp_dir.mkdir()

    def path(self, blob_id: str) -> Path:
        if not blob_id or "/" in blob_id or blob_id.startswith("."):
            raise ValueError(f"invalid blob id {blob_id!r}")
        return self.root / blob_id

    def open(self, blob_id: str) -> BinaryIO | None:
        """The blob for reading, or None when there is none. Deleting it later does not cut a read short."""
        try:
            return open(self.path(blob_id), "rb")
        except FileNotFoundError:
            return None

    def exists(self, blob_id: str) -> bool:
        return self.path(blob_id).is_file()

    def size(self, blob_id: str) -> int:
        return self.path(blob_id).stat().st_size

    def blob_ids(self) -> Iterator[str]:
        """Every committed blob."""
        return (path.name for path in self.root.iterdir() if path.is_file())

    def writer(self, blob_id: str) -> BlobWriter:
        return BlobWriter(self, blob_id)

    def adopt(self, blob_id: str, path: Path) -> Path:
        """Move a finished file (written under `temp_dir`, so on the same file system) into the store."""
        final = self.path(blob_id)
        os.replace(path, final)
        return final

    def rename(self, blob_id: str, new_id: str) -> None:
        os.replace(self.path(blob_id), self.path(new_id))

    def delete(self, blob_id: str) -> None:
        self.path(blob_id).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        for path in self.root.glob(f"{self.path(prefix).name}*"):
            if path.is_file():
                path.unlink(missing_ok=True)
