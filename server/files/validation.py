"""Validation of `fine-tune` uploads, off the request path.

An upload is answered with `status: "uploaded"`; a background thread then streams the blob
through the validator and the file becomes `processed` or `error` (with line-numbered
`status_details`). A well-formed file with fewer examples than a training file needs is
`processed` (it can serve as a validation file) and its `status_details` says so; job creation
refuses it as a training file. Files left `uploaded` by a restart are validated again at start-up.

Nebius's clients create a job right after the upload (Nebius validates datasets inside the job), so
on a server of its dialect job creation first waits for the files it names (`settled`).
"""

import asyncio
import logging

from contract.data_formats import validate_file
from contract.literals import FileStatus
from server.files.store import FileStore
from storage.files import FileRecord

log = logging.getLogger("gxft.files")


class FileValidator:
    def __init__(self, files: FileStore, min_examples: int, concurrency: int = 2):
        self.files = files
        self.min_examples = min_examples
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: dict[str, asyncio.Task] = {}  # file id → its validation

    def submit(self, record: FileRecord) -> None:
        task = asyncio.get_running_loop().create_task(self._validate(record))
        self._tasks[record.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(record.id, None))

    async def settled(self, file_ids: list[str], timeout: float) -> None:
        """Return once none of these files is being validated, or after `timeout` seconds."""
        pending = [task for file_id in file_ids if (task := self._tasks.get(file_id)) is not None]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    def resume_pending(self) -> None:
        for record in self.files.records.awaiting_validation():
            self.submit(record)

    async def _validate(self, record: FileRecord) -> None:
        async with self._slots:
            try:
                report = await asyncio.to_thread(validate_file, self.files.content_path(record.id))
            except OSError as exc:
                log.warning("validation of %s could not read its blob: %s", record.id, exc)
                self.files.records.set_validation_result(record.id, "error", "the file could not be read", None, None)
                return
        status: FileStatus = "processed" if report.ok else "error"
        # A small file is fine as a validation file; say why it cannot be a training file.
        details = report.too_few_examples(self.min_examples) if report.ok else report.summary()
        self.files.records.set_validation_result(record.id, status, details, report.data_format, report.example_count)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
