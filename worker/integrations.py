"""Weights & Biases reporting for jobs that ask for it, when the `wandb` package is installed.

The job's `integrations` (OpenAI's shape: `{"type": "wandb", "wandb": {project, name, entity, tags}}`)
travel with the job to its worker. Without the package the job trains as usual and says so in an event.
"""

import importlib.util
from typing import Any


class WandbRun:
    def __init__(self, run: Any):
        self._run = run

    def log(self, metrics: dict[str, float], step: int) -> None:
        self._run.log(metrics, step=step)

    def finish(self) -> None:
        self._run.finish()


def start_wandb(integrations: list[dict[str, Any]], job_id: str,
                config: dict[str, Any]) -> tuple[WandbRun | None, str | None]:
    """The run to log to (or None), and a note for the job's events when the integration cannot run."""
    wanted = [i["wandb"] for i in integrations if i.get("type") == "wandb"]
    if not wanted:
        return None, None
    if importlib.util.find_spec("wandb") is None:
        return None, "The wandb integration was requested, but the wandb package is not installed on the worker"
    import wandb

    options = wanted[0]
    run = wandb.init(
        project=options["project"], name=options.get("name") or job_id, entity=options.get("entity"),
        tags=options.get("tags"), config=config, id=job_id, resume="allow",
    )
    return WandbRun(run), None
