"""What a job leaves behind: its checkpoints and result files, and the scratch blobs they start as.

A worker uploads each file of a checkpoint, and the training state a resumed job would start from,
before it reports the checkpoint that names them. Until that report they are scratch blobs under
job-scoped names (`staged-<job id>-…` for result files, `state-<job id>-…` for training state); this
module is the one owner of those names. The report's transaction adopts the staged blobs as files
of the job's project: that is the moment a checkpoint becomes downloadable. A checkpoint that never
completes leaves no file, only scratch, which goes when the job ends or at the next start-up.

The two dialects keep different checkpoints: OpenAI's the last three (one per epoch), Nebius's every
epoch's, and Nebius names a checkpoint's files `<checkpoint id>/<file>` (its sample takes the part after
the slash). Wherever a file is put on disk, its name's last part is used.
"""

import time
from pathlib import PurePosixPath
from typing import BinaryIO, Literal, get_args

from contract.ids import new_id, random_base62
from contract.internal_api import CheckpointReport, ResumePoint, StartingWeights
from server.config import Dialect
from server.errors import invalid_request
from server.files.store import FileStore
from storage.blobs import BlobStore, BlobWriter
from storage.jobs import CheckpointRecord, JobRecord, JobRepository

KEPT_CHECKPOINTS: dict[Dialect, int | None] = {"openai": 3, "nebius": None}  # None: all of them

ScratchKind = Literal["staged", "state"]  # a result file awaiting its checkpoint; training state
SCRATCH_KINDS: tuple[ScratchKind, ...] = get_args(ScratchKind)


def _scratch_prefix(kind: ScratchKind, job_id: str) -> str:
    return f"{kind}-{job_id}-"


def local_name(filename: str) -> str:
    """A result file's name on disk: Nebius's `<checkpoint id>/<file>` loses its folder."""
    return PurePosixPath(filename).name


class JobResults:
    def __init__(self, jobs: JobRepository, files: FileStore, blobs: BlobStore, dialect: Dialect = "openai"):
        self.jobs = jobs
        self.files = files
        self.blobs = blobs
        self.dialect = dialect

    # Scratch

    def scratch_writer(self, kind: ScratchKind, job_id: str) -> BlobWriter:
        return self.blobs.writer(new_id(_scratch_prefix(kind, job_id)))

    def open_state(self, job: JobRecord, blob_id: str) -> BinaryIO | None:
        """The job's training state, for its resuming worker, opened now (pruning cannot cut it short); None for
        any other blob, or one that is gone."""
        return self.blobs.open(blob_id) if blob_id.startswith(_scratch_prefix("state", job.id)) else None

    def input_files(self, job: JobRecord) -> set[str]:
        """The files a job trains on: its training and validation files, and the model it continues."""
        inputs = {job.training_file, *([job.validation_file] if job.validation_file else [])}
        starting = self.starting_weights(job) if job.parent_checkpoint else None
        return inputs | set(starting.files.values() if starting else ())

    def _check_scratch(self, job: JobRecord, kind: ScratchKind, blob_id: str) -> None:
        if not blob_id.startswith(_scratch_prefix(kind, job.id)) or not self.blobs.exists(blob_id):
            raise invalid_request(f"{blob_id!r} is not a {kind} upload of job {job.id}.", param="result_files")

    def adopt(self, job: JobRecord, staged: dict[str, str], folder: str | None = None) -> list[str]:
        """Staged uploads (file name → blob) become the job's result files, named `<folder>/<file>` when a
        folder is given; call inside the transaction that records them, so that a failed transaction
        leaves only orphan blobs for the start-up sweep."""
        for blob_id in staged.values():
            self._check_scratch(job, "staged", blob_id)
        return [self.files.adopt_blob(job.project, blob_id, filename, folder=folder).id
                for filename, blob_id in staged.items()]

    # Checkpoints

    def fine_tuned_model_name(self, job: JobRecord, name_id: str) -> str:
        """`ft:{base}:{project}:{suffix}:{id}`, where a continued job names the base of its first ancestor."""
        root = job
        while root.parent_checkpoint is not None:
            parent_job_id = self.jobs.checkpoint_job_id(root.parent_checkpoint)
            parent = self.jobs.get(parent_job_id) if parent_job_id else None
            if parent is None:
                break
            root = parent
        return f"ft:{root.model}:{job.project}:{job.suffix or ''}:{name_id}"

    def record_checkpoint(self, job: JobRecord, report: CheckpointReport) -> CheckpointRecord:
        """The checkpoint, its files adopted; call inside a transaction. A report retried after a lost answer
        (the server restarted) finds its staged files adopted already and answers the same checkpoint."""
        staged_gone = not any(self.blobs.exists(blob_id) for blob_id in report.result_files.values())
        for existing in self.jobs.live_checkpoints(job.id):
            if existing.step_number == report.step_number and staged_gone:
                return existing
        if report.state_blob is not None:
            self._check_scratch(job, "state", report.state_blob)
        name = self.fine_tuned_model_name(job, job.model_name_id) if report.final else (
            self.fine_tuned_model_name(job, random_base62(8)) + f":ckpt-step-{report.step_number}"
        )
        checkpoint_id = new_id("ftckpt_")
        checkpoint = CheckpointRecord(
            id=checkpoint_id,
            job_id=job.id,
            created_at=int(time.time()),
            step_number=report.step_number,
            fine_tuned_model_checkpoint=name,
            metrics=report.metrics,
            result_files=self.adopt(job, report.result_files,
                                    folder=checkpoint_id if self.dialect == "nebius" else None),
            weights="adapter" if (job.resolved or {}).get("lora", True) else "full",
            state_blob=report.state_blob,
        )
        self.jobs.add_checkpoint(checkpoint)
        self.jobs.add_event(job.id, f"Checkpoint created at step {report.step_number} with Snapshot ID: {name}",
                            data={})
        return checkpoint

    def prune(self, job_id: str) -> None:
        live = self.jobs.live_checkpoints(job_id)
        kept = KEPT_CHECKPOINTS[self.dialect]
        for old in live[kept:] if kept is not None else ():
            self.delete_checkpoint(old)
        # Only the newest checkpoint's optimizer state is needed to resume.
        for older in live[1:]:
            if older.state_blob:
                self.blobs.delete(older.state_blob)

    def delete_checkpoint(self, checkpoint: CheckpointRecord) -> None:
        """The checkpoint, as a model too: its name stops resolving and its files are deleted."""
        self.jobs.mark_checkpoint_deleted(checkpoint.id)
        for file_id in checkpoint.result_files:
            self.files.delete_live(file_id)

    def resume_point(self, job_id: str) -> ResumePoint | None:
        for checkpoint in self.jobs.live_checkpoints(job_id):
            if checkpoint.state_blob:
                return ResumePoint(
                    checkpoint_id=checkpoint.id, step_number=checkpoint.step_number, state_blob=checkpoint.state_blob
                )
        return None

    def starting_weights(self, job: JobRecord) -> StartingWeights | None:
        """The files of the checkpoint a job continues from; None once any of them has been deleted."""
        checkpoint = self.jobs.live_checkpoint(job.parent_checkpoint or "")
        if checkpoint is None:
            return None
        files = {}
        for file_id in checkpoint.result_files:
            record = self.files.get_live(file_id)
            if record is None:
                return None
            files[local_name(record.filename)] = file_id
        return StartingWeights(model=job.model, files=files, adapter=checkpoint.weights == "adapter")

    # Housekeeping

    def drop_leftovers(self, job_id: str) -> None:
        """At the end of a job: its optimizer state, and any upload for a checkpoint never added."""
        for checkpoint in self.jobs.live_checkpoints(job_id):
            if checkpoint.state_blob:
                self.blobs.delete(checkpoint.state_blob)
        for kind in SCRATCH_KINDS:
            self.blobs.delete_prefix(_scratch_prefix(kind, job_id))

    def sweep(self, upload_parts: set[str]) -> None:
        """At start-up: blobs whose upload committed but whose record never did (a crash between the two),
        and the scratch of finished jobs. An unfinished job keeps its scratch: its worker may deliver it yet;
        `upload_parts` (those of pending uploads) stay too."""
        live = self.files.live_ids() | self.jobs.live_state_blobs() | upload_parts
        keep = tuple(_scratch_prefix(kind, job_id) for job_id in self.jobs.unfinished_ids() for kind in SCRATCH_KINDS)
        for blob_id in list(self.blobs.blob_ids()):
            if blob_id not in live and not blob_id.startswith(keep):
                self.blobs.delete(blob_id)
