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
from worker import distributed
from worker.client import JobTaken, ServerGraderModel, ServerRefused, WorkerClient
from worker.data import DataError
from worker.distributed import SINGLE, Share
from worker.integrations import Tracker, start_trackers
from worker.metrics_csv import write_metrics_csv
from worker.model_setup import GPURequired
from worker.objectives.reinforcement import GraderFailed
from worker.reporter import ProgressReporter
from worker.trainer import Trainer, TrainingHooks, TrainingResult
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


ORDERS: tuple[Order, ...] = ("continue", "pause", "stop")


class LeaderHooks:
    """Rank 0's hooks in a run over several processes: the job's hooks, each order passed on to every rank so
    that all stop, pause or go on at the same step. Once "stop" is passed on, no rank asks again (the loop may
    ask once more after a checkpoint, and rank 0 may have gone by then)."""

    def __init__(self, job_hooks: TrainingHooks, device: torch.device):
        self.job_hooks = job_hooks
        self.device = device
        self.stopped = False

    def _tell(self, order: Order) -> Order:
        order = ORDERS[distributed.broadcast(ORDERS.index(order), self.device)]
        self.stopped = order == "stop"
        return order

    def step_done(self, step: int, total_steps: int, metrics: dict[str, float], trained_tokens: int) -> None:
        self.job_hooks.step_done(step, total_steps, metrics, trained_tokens)

    def order(self) -> Order:
        return "stop" if self.stopped else self._tell(self.job_hooks.order())

    def save_checkpoint(self, step: int, metrics: dict[str, float], weights_dir: Path, state_path: Path | None,
                        final: bool, paused: bool) -> Order:
        try:
            order = self.job_hooks.save_checkpoint(step, metrics, weights_dir, state_path, final, paused)
        except JobTaken:  # the others stop here with rank 0, rather than wait on it until a collective fails
            self._tell("stop")
            raise
        return self._tell(order)


class FollowerHooks:
    """The other ranks' hooks: nothing to report or deliver (rank 0 does), only rank 0's orders to hear."""

    def __init__(self, device: torch.device):
        self.device = device
        self.stopped = False

    def _hear(self) -> Order:
        order = ORDERS[distributed.broadcast(0, self.device)]
        self.stopped = order == "stop"
        return order

    def step_done(self, step: int, total_steps: int, metrics: dict[str, float], trained_tokens: int) -> None:
        pass

    def order(self) -> Order:
        return "stop" if self.stopped else self._hear()

    def save_checkpoint(self, step: int, metrics: dict[str, float], weights_dir: Path, state_path: Path | None,
                        final: bool, paused: bool) -> Order:
        return self._hear()


def _peer_lost(exc: BaseException) -> bool:
    """A collective failed because another rank is gone (gloo says so in a RuntimeError, NCCL in a DistError)."""
    return isinstance(exc, torch.distributed.DistError) or "gloo" in str(exc)


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
    """Runs the jobs that the queue hands this worker (`run` is the queue's task), one at a time, each in this
    process or as `procs` processes (worker/rank_processes.py)."""

    def __init__(self, server_url: str, worker_key: str, procs: int = 1):
        self.server_url = server_url
        self.worker_key = worker_key
        self.procs = procs

    def run(self, job_id: str) -> None:
        client = WorkerClient(self.server_url, self.worker_key)
        try:
            spec = client.claim(job_id)
            if spec is None:
                log.info("job %s is not queued any more; skipping it", job_id)
                return
            log.info("training job %s on %s", job_id, spec.base_model)
            if self.procs > 1 and spec.method != "reinforcement":
                from worker.rank_processes import run_job_on_processes

                run_job_on_processes(client, spec, self.worker_key, self.procs)
            else:
                run_job(client, spec)
        finally:
            client.close()


def run_job(client: WorkerClient, spec: JobSpec, share: Share = SINGLE, workdir: Path | None = None) -> None:
    """The job in this process: all of it, or rank 0's part of a run over several (then the others wait, in
    `follow_job`, for the files it fetches into the shared `workdir`)."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix=f"gxft-{spec.job_id}-"))
    try:
        with ProgressReporter(client, spec.job_id) as reporter:
            try:
                result = _train(client, spec, reporter, workdir, share)
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
                reporter.flush()
                if share.world > 1 and _peer_lost(exc):
                    raise  # another rank died: the worker, which sees how, fails the job (rank_processes.py)
                code, message, param = _failure(exc)
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


def _fetch_files(client: WorkerClient, spec: JobSpec, workdir: Path) -> None:
    """The job's files (and the state it resumes from) into `workdir`, where `_training_run` finds them."""
    client.download_file(spec.job_id, spec.training_file, workdir / "train.jsonl")
    if spec.validation_file:
        client.download_file(spec.job_id, spec.validation_file, workdir / "valid.jsonl")
    if spec.starting_weights is not None:
        (workdir / "starting-weights").mkdir()
        for filename, file_id in spec.starting_weights.files.items():
            client.download_file(spec.job_id, file_id, workdir / "starting-weights" / filename)
    if spec.resume is not None:
        client.download_state(spec.job_id, spec.resume.state_blob, workdir / "resume.pt")


def _training_run(spec: JobSpec, workdir: Path, share: Share, grader_model: ServerGraderModel | None) -> TrainingRun:
    """The trainer's input, from the files `_fetch_files` put in `workdir`."""
    continued = None
    if spec.starting_weights is not None:
        continued = ContinuedModel(folder=workdir / "starting-weights", adapter=spec.starting_weights.adapter,
                                   name=spec.starting_weights.model)
    device = pick_device()
    if device.type == "cuda" and share.world > 1:
        device = torch.device("cuda", share.rank)  # one GPU per rank
    return TrainingRun(
        method=spec.method, model_path=spec.model_path, model_name=spec.base_model,
        train_path=workdir / "train.jsonl", valid_path=workdir / "valid.jsonl" if spec.validation_file else None,
        data_format=spec.data_format, seed=spec.seed, settings=spec.settings, workdir=workdir, device=device,
        continued=continued, model_gguf=spec.model_gguf, grader=spec.grader, grader_model=grader_model,
        grader_embedder=grader_model,
    )


def _ready_trainer(spec: JobSpec, run: TrainingRun, share: Share) -> Trainer:
    trainer = Trainer(run, share)
    trainer.setup()
    if spec.resume is not None:
        trainer.load_state(run.workdir / "resume.pt")
    return trainer


def follow_job(spec: JobSpec, share: Share, workdir: Path) -> None:
    """A rank other than 0: it trains its part of each batch, talks to no server and follows rank 0's orders."""
    distributed.barrier()  # rank 0 has fetched the files
    run = _training_run(spec, workdir, share, None)
    _ready_trainer(spec, run, share).train(FollowerHooks(run.device))


def _train(client: WorkerClient, spec: JobSpec, reporter: ProgressReporter, workdir: Path,
           share: Share) -> TrainingResult:
    _fetch_files(client, spec, workdir)
    if share.world > 1:
        distributed.barrier()  # the other ranks read the files now
    run = _training_run(spec, workdir, share, ServerGraderModel(client, spec.job_id))
    if run.model_gguf is not None and not is_converted(Path(run.model_path)):
        reporter.event(f"Preparing {spec.base_model} from its GGUF file, once for this machine (about a minute)")
    trainer = _ready_trainer(spec, run, share)
    reporter.progress(trained_steps=trainer.step, total_steps=trainer.total_steps,
                      trained_tokens=trainer.trained_tokens)
    trackers, notes = start_trackers(spec.integrations, spec.job_id, msgspec.to_builtins(spec.settings))
    for note in notes:
        reporter.event(note, level="warn")
    hooks: TrainingHooks = JobHooks(client, reporter, spec.job_id, trackers)
    if share.world > 1:
        hooks = LeaderHooks(hooks, run.device)
    try:
        return trainer.train(hooks)
    finally:
        for tracker in trackers:
            tracker.finish()
