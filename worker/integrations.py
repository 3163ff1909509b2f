"""Experiment trackers for jobs that ask for them: Weights & Biases and MLflow, when their package is
installed on the worker.

The job's `integrations` travel with the job to its worker: OpenAI's `{"type": "wandb", "wandb":
{project, name, entity, tags}}`, with Nebius's write-only `api_key`, and Nebius's `{"type": "mlflow",
"mlflow": {tracking_uri, experiment_name, run_name, tags, username, password, certificate_file}}`.
Without the package the job trains as usual and says so in an event.
"""

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from typing import Any, Protocol


class Tracker(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def finish(self) -> None: ...


class WandbRun:
    def __init__(self, options: dict[str, Any], job_id: str, config: dict[str, Any]):
        import wandb

        if options.get("api_key"):
            wandb.login(key=options["api_key"], relogin=True)
        self._run = wandb.init(
            project=options["project"], name=options.get("name") or job_id, entity=options.get("entity"),
            tags=options.get("tags"), config=config, id=job_id, resume="allow",
        )

    def log(self, metrics: dict[str, float], step: int) -> None:
        self._run.log(metrics, step=step)

    def finish(self) -> None:
        self._run.finish()


@contextlib.contextmanager
def _mlflow_credentials(options: dict[str, Any]) -> Iterator[None]:
    """MLflow reads credentials from the environment only; they are set around each call, so that one job's
    never reach another's."""
    names = {"username": "MLFLOW_TRACKING_USERNAME", "password": "MLFLOW_TRACKING_PASSWORD",
             "certificate_file": "MLFLOW_TRACKING_SERVER_CERT_PATH"}
    saved = {variable: os.environ.get(variable) for variable in names.values()}
    os.environ.update({variable: options[key] for key, variable in names.items() if options.get(key)})
    try:
        yield
    finally:
        for variable, value in saved.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value


class MlflowRun:
    def __init__(self, options: dict[str, Any], job_id: str, config: dict[str, Any]):
        from mlflow.tracking import MlflowClient

        self._options = options
        with _mlflow_credentials(options):
            self._client = MlflowClient(tracking_uri=options["tracking_uri"])
            experiment = self._client.get_experiment_by_name(options["experiment_name"])
            experiment_id = (experiment.experiment_id if experiment is not None
                             else self._client.create_experiment(options["experiment_name"]))
            run = self._client.create_run(experiment_id, run_name=options.get("run_name") or job_id,
                                          tags={**options.get("tags", {}), "gxft.job_id": job_id})
            self._run_id = run.info.run_id
            for key, value in config.items():
                self._client.log_param(self._run_id, key, value)

    def log(self, metrics: dict[str, float], step: int) -> None:
        with _mlflow_credentials(self._options):
            for key, value in metrics.items():
                self._client.log_metric(self._run_id, key, value, step=step)

    def finish(self) -> None:
        with _mlflow_credentials(self._options):
            self._client.set_terminated(self._run_id)


TRACKERS: dict[str, tuple[str, type]] = {"wandb": ("wandb", WandbRun), "mlflow": ("mlflow", MlflowRun)}


def start_trackers(integrations: list[dict[str, Any]], job_id: str,
                   config: dict[str, Any]) -> tuple[list[Tracker], list[str]]:
    """The trackers to log to, and a note for the job's events for each integration that cannot run."""
    trackers: list[Tracker] = []
    notes = []
    for integration in integrations:
        kind = integration.get("type", "")
        if kind not in TRACKERS:
            continue
        package, tracker = TRACKERS[kind]
        if importlib.util.find_spec(package) is None:
            notes.append(f"The {kind} integration was requested, but the {package} package is not installed on the "
                         "worker")
            continue
        try:
            trackers.append(tracker(integration[kind], job_id, config))
        except Exception as exc:  # a tracker that cannot start must not stop the training
            notes.append(f"The {kind} integration could not start: {type(exc).__name__}: {exc}")
    return trackers, notes
