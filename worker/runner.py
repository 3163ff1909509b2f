"""One job, start to end, on a worker: claim → fetch files → train → deliver checkpoints → report the outcome.

Any failure (a model that does not load, bad data found late, out of memory) marks the job `failed`
with a reason, and the worker goes on to its next job.
"""

import gc
import logging
import shutil
import tempfile
import time
from pathlib import Path

import msgspec
import torch

from contract.internal_api import CheckpointReport, CompletionReport, FailureReport, JobSpec, Order
from modeling.importing import ImportRefused, is_converted
from modeling.loading import ModelLoadError, pick_device
from worker.client import JobTaken, ServerGraderModel, ServerRefused, WorkerClient
from worker.data import DataError
from worker.integrations import Tracker, start_trackers
from worker.metrics_csv import write_metrics_csv
from worker.model_setup import GPURequired
from worker.objectives.reinforcement import GraderFailed
from worker.reporter import ProgressReporter
from worker.trainer import Trainer, TrainingResult
from worker.training_run import ContinuedModel, TrainingRun

log = logging.getLogger("gxft.worker")


class JobHooks:
    """What the training loop calls: progress to the reporter, checkpoints to the server."""

    def __init__(self, client: WorkerClient, reporter: ProgressReporter, job_id: str, trackers: list[Tracker]):
        self.client = client
        self.reporter = reporter
        self.job_id = job_id
        self.trackers = trackers
        self.started = time.time()
        self.first_step: int | None = None

    def step_done(self, step: int, total_steps: int, metrics: dict[str, float], trained_tokens: int) -> None:
        if self.first_step is None:
            self.first_step = step - 1
        done = step - self.first_step
        remaining = total_steps - step
        eta = int(time.time() + (time.time() - self.started) / done * remaining) if remaining else None
        message = f"Step {step}/{total_steps}: training loss={metrics['train_loss']:.2f}"
        if "train_mean_reward" in metrics:
            message += f", mean reward={metrics['train_mean_reward']:.2f}"
        if "valid_mean_reward" in metrics:
            message += f", validation mean reward={metrics['valid_mean_reward']:.2f}"
        if "train_reward_margin" in metrics:
            message += (f", reward margin={metrics['train_reward_margin']:.2f}, "
                        f"reward accuracy={metrics['train_reward_accuracy']:.2f}")
        if "valid_loss" in metrics:
            message += f", validation loss={metrics['valid_loss']:.2f}"
        self.reporter.event(message, type="metrics", data=metrics)
        for tracker in self.trackers:
            tracker.log(metrics, step)
        self.reporter.progress(
            trained_steps=step, total_steps=total_steps, trained_tokens=trained_tokens, estimated_finish=eta
        )

    def order(self) -> Order:
        return self.reporter.order

    def save_checkpoint(self, step: int, metrics: dict[str, float], weights_dir: Path, state_path: Path | None,
                        final: bool, paused: bool) -> Order:
        self.reporter.flush()  # the metrics events come before the checkpoint event
        result_files = {
            path.name: self.client.upload_result_file(self.job_id, path)
            for path in sorted(weights_dir.iterdir())
            if path.is_file() and path.name != "README.md"  # peft's model card, not weights
        }
        state_blob = self.client.upload_state(self.job_id, state_path) if state_path else None
        checkpoint_metrics = {k: v for k, v in metrics.items() if k != "total_steps"}
        order = self.client.add_checkpoint(self.job_id, CheckpointReport(
            step_number=step, metrics=checkpoint_metrics,
            result_files=result_files, state_blob=state_blob, final=final, paused=paused,
        ))
        self.reporter.heard(order)
        shutil.rmtree(weights_dir, ignore_errors=True)
        if state_path:
            state_path.unlink(missing_ok=True)
        return order


def _failure(exc: BaseException) -> tuple[str, str, str | None]:
    if isinstance(exc, (ModelLoadError, ImportRefused)):
        return "model_load_failed", str(exc), "model"
    if isinstance(exc, GPURequired):
        return "gpu_required", str(exc), "hyperparameters"
    if isinstance(exc, GraderFailed):
        return "grader_failed", f"The job's grader could not grade the model's answers: {exc}", "method"
    if isinstance(exc, DataError):
        return "invalid_training_file", f"The job failed due to an invalid training file: {exc}", "training_file"
    if isinstance(exc, ServerRefused) and exc.code == "insufficient_storage":
        return "insufficient_storage", f"The server ran out of disk space for this job's results: {exc.message}", None
    if isinstance(exc, torch.OutOfMemoryError):
        return "out_of_memory", "Training ran out of memory; try a smaller batch_size or context_length.", None
    return "training_failed", f"Training failed: {type(exc).__name__}: {exc}", None


class JobRunner:
    """Runs the jobs that the queue hands this worker (`run` is the queue's task), one at a time."""

    def __init__(self, server_url: str, worker_key: str):
        self.server_url = server_url
        self.worker_key = worker_key

    def run(self, job_id: str) -> None:
        client = WorkerClient(self.server_url, self.worker_key)
        try:
            spec = client.claim(job_id)
            if spec is None:
                log.info("job %s is not queued any more; skipping it", job_id)
                return
            log.info("training job %s on %s", job_id, spec.base_model)
            run_job(client, spec)
        finally:
            client.close()


def run_job(client: WorkerClient, spec: JobSpec) -> None:
    workdir = Path(tempfile.mkdtemp(prefix=f"gxft-{spec.job_id}-"))
    try:
        with ProgressReporter(client, spec.job_id) as reporter:
            try:
                result = _train(client, spec, reporter, workdir)
                if result.status != "completed":
                    log.info("job %s stopped: %s", spec.job_id, result.status)
                    return
                reporter.flush()  # every step's events arrive before the job ends
                csv_path = workdir / "step_metrics.csv"
                write_metrics_csv(result.metric_rows, csv_path)
                client.complete(spec.job_id, CompletionReport(
                    trained_tokens=result.trained_tokens,
                    result_files={csv_path.name: client.upload_result_file(spec.job_id, csv_path)},
                ))
            except JobTaken:
                log.info("job %s was taken from this worker; stopping", spec.job_id)
            except Exception as exc:
                log.exception("job %s failed", spec.job_id)
                code, message, param = _failure(exc)
                reporter.flush()
                client.fail(spec.job_id, FailureReport(code=code, message=message, param=param))
    except JobTaken:
        log.info("job %s was taken from this worker; stopping", spec.job_id)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        _release_gpu_memory()


def _release_gpu_memory() -> None:
    """The worker lives on between jobs: hand the finished job's cached GPU memory back to the device."""
    if torch.cuda.is_available():
        gc.collect()
        torch.cuda.empty_cache()


def _training_run(client: WorkerClient, spec: JobSpec, workdir: Path) -> TrainingRun:
    """The job's files fetched into `workdir`, as the trainer's input."""
    train_path = client.download_file(spec.job_id, spec.training_file, workdir / "train.jsonl")
    valid_path = (client.download_file(spec.job_id, spec.validation_file, workdir / "valid.jsonl")
                  if spec.validation_file else None)
    continued = None
    if spec.starting_weights is not None:
        folder = workdir / "starting-weights"
        folder.mkdir()
        for filename, file_id in spec.starting_weights.files.items():
            client.download_file(spec.job_id, file_id, folder / filename)
        continued = ContinuedModel(folder=folder, adapter=spec.starting_weights.adapter,
                                   name=spec.starting_weights.model)
    return TrainingRun(
        method=spec.method, model_path=spec.model_path, model_name=spec.base_model, train_path=train_path,
        valid_path=valid_path, data_format=spec.data_format, seed=spec.seed, settings=spec.settings,
        workdir=workdir, device=pick_device(), continued=continued,
        model_gguf=spec.model_gguf, grader=spec.grader, grader_model=ServerGraderModel(client, spec.job_id),
    )


def _train(client: WorkerClient, spec: JobSpec, reporter: ProgressReporter, workdir: Path) -> TrainingResult:
    run = _training_run(client, spec, workdir)
    if run.model_gguf is not None and not is_converted(Path(run.model_path)):
        reporter.event(f"Preparing {spec.base_model} from its GGUF file, once for this machine (about a minute)")
    trainer = Trainer(run)
    trainer.setup()
    if spec.resume is not None:
        trainer.load_state(client.download_state(spec.job_id, spec.resume.state_blob, workdir / "resume.pt"))
    reporter.progress(trained_steps=trainer.step, total_steps=trainer.total_steps,
                      trained_tokens=trainer.trained_tokens)
    trackers, notes = start_trackers(spec.integrations, spec.job_id, msgspec.to_builtins(spec.settings))
    for note in notes:
        reporter.event(note, level="warn")
    try:
        return trainer.train(JobHooks(client, reporter, spec.job_id, trackers))
    finally:
        for tracker in trackers:
            tracker.finish()
