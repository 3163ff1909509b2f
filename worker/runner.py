"""One job, start to end, on a worker: claim → fetch files → train → deliver checkpoints → report the outcome.

Any failure (a model that does not load, bad data found late, out of memory) marks the job `failed`
with a reason, and the worker goes on to its next job.
"""

import gc
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import torch

from server.internal_protocol import CheckpointReport, CompletionReport, FailureReport, JobSpec
from worker.client import JobTaken, ServerRefused, WorkerClient
from worker.data import DataError, write_metrics_csv
from worker.integrations import WandbRun, start_wandb
from worker.reporter import ProgressReporter
from worker.trainer import RECIPES, GPURequired, ModelLoadError

log = logging.getLogger("gxft.worker")


@dataclass
class WorkerContext:
    server_url: str
    token: str
    worker_id: str


# Set once by `gxft worker` before its consumer starts (worker/main.py).
context: WorkerContext | None = None


class JobHooks:
    """What the training loop calls: progress to the reporter, checkpoints to the server."""

    def __init__(self, client: WorkerClient, reporter: ProgressReporter, spec: JobSpec, wandb_run: WandbRun | None):
        self.client = client
        self.reporter = reporter
        self.spec = spec
        self.wandb_run = wandb_run
        self.started = time.time()
        self.first_step: int | None = None

    def step_done(self, step: int, total_steps: int, metrics: dict[str, float], trained_tokens: int) -> None:
        if self.first_step is None:
            self.first_step = step - 1
        done = step - self.first_step
        remaining = total_steps - step
        eta = int(time.time() + (time.time() - self.started) / done * remaining) if remaining else None
        message = f"Step {step}/{total_steps}: training loss={metrics['train_loss']:.2f}"
        if "train_reward_margin" in metrics:
            message += (f", reward margin={metrics['train_reward_margin']:.2f}, "
                        f"reward accuracy={metrics['train_reward_accuracy']:.2f}")
        if "valid_loss" in metrics:
            message += f", validation loss={metrics['valid_loss']:.2f}"
        self.reporter.event(message, type="metrics", data=metrics)
        if self.wandb_run is not None:
            self.wandb_run.log(metrics, step)
        self.reporter.progress(
            trained_steps=step, total_steps=total_steps, trained_tokens=trained_tokens, estimated_finish=eta
        )

    def order(self) -> str:
        return self.reporter.order

    def save_checkpoint(self, step, metrics, weights_dir: Path, state_path: Path | None, final: bool,
                        paused: bool) -> None:
        job_id = self.spec.job_id
        self.reporter.flush()  # the metrics events come before the checkpoint event
        result_files = {
            path.name: self.client.upload_file(job_id, path)
            for path in sorted(weights_dir.iterdir())
            if path.is_file() and path.name != "README.md"  # peft's model card, not weights
        }
        state_blob = self.client.upload_blob(job_id, state_path) if state_path else None
        checkpoint_metrics = {k: v for k, v in metrics.items() if k != "total_steps"}
        self.client.add_checkpoint(job_id, CheckpointReport(
            worker_id=self.client.worker_id, step_number=step, metrics=checkpoint_metrics,
            result_files=result_files, state_blob=state_blob, final=final, paused=paused,
        ))
        shutil.rmtree(weights_dir, ignore_errors=True)
        if state_path:
            state_path.unlink(missing_ok=True)


def _failure(exc: BaseException) -> tuple[str, str, str | None]:
    if isinstance(exc, ModelLoadError):
        return "model_load_failed", str(exc), "model"
    if isinstance(exc, GPURequired):
        return "gpu_required", str(exc), "hyperparameters"
    if isinstance(exc, DataError):
        return "invalid_training_file", f"The job failed due to an invalid training file: {exc}", "training_file"
    if isinstance(exc, ServerRefused) and exc.code == "insufficient_storage":
        return "insufficient_storage", f"The server ran out of disk space for this job's results: {exc.message}", None
    if isinstance(exc, torch.OutOfMemoryError):
        return "out_of_memory", "Training ran out of memory; try a smaller batch_size or context_length.", None
    return "training_failed", f"Training failed: {type(exc).__name__}: {exc}", None


def run_claimed_job(job_id: str) -> None:
    assert context is not None, "run_claimed_job runs inside `gxft worker`"
    client = WorkerClient(context.server_url, context.token, context.worker_id)
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
                outcome = _train(client, spec, reporter, workdir)
                if outcome.status != "completed":
                    log.info("job %s stopped: %s", spec.job_id, outcome.status)
                    return
                reporter.flush()  # every step's events arrive before the job ends
                csv_path = workdir / "step_metrics.csv"
                write_metrics_csv(outcome.metric_rows, csv_path)
                client.complete(spec.job_id, CompletionReport(
                    worker_id=client.worker_id, trained_tokens=outcome.trained_tokens,
                    result_files={csv_path.name: client.upload_file(spec.job_id, csv_path)},
                ))
            except JobTaken:
                log.info("job %s was taken from this worker; stopping", spec.job_id)
            except Exception as exc:
                log.exception("job %s failed", spec.job_id)
                code, message, param = _failure(exc)
                reporter.flush()
                client.fail(spec.job_id, FailureReport(worker_id=client.worker_id, code=code, message=message,
                                                       param=param))
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


def _train(client: WorkerClient, spec: JobSpec, reporter: ProgressReporter, workdir: Path):
    train_path = client.download_file(spec.training_file, workdir / "train.jsonl")
    valid_path = client.download_file(spec.validation_file, workdir / "valid.jsonl") if spec.validation_file else None
    starting_dir = None
    if spec.starting_weights is not None:
        starting_dir = workdir / "starting-weights"
        starting_dir.mkdir()
        for filename, file_id in spec.starting_weights.files.items():
            client.download_file(file_id, starting_dir / filename)
    recipe = RECIPES[spec.method](spec, train_path, valid_path, workdir, starting_dir)
    recipe.setup()
    if spec.resume is not None:
        recipe.load_state(client.download_blob(spec.resume.state_blob, workdir / "resume.pt"))
    reporter.progress(trained_steps=recipe.step, total_steps=recipe.total_steps, trained_tokens=recipe.trained_tokens)
    wandb_run, note = start_wandb(spec.integrations, spec.job_id, msgspec.to_builtins(spec.settings))
    if note:
        reporter.event(note, level="warn")
    try:
        return recipe.train(JobHooks(client, reporter, spec, wandb_run))
    finally:
        if wandb_run is not None:
            wandb_run.finish()
