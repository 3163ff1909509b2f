"""The contract between the training loop and an objective: the batches it makes and what the loop
asks of them."""

from collections.abc import Iterator
from typing import Any, NamedTuple, Protocol

import torch

from worker.distributed import Share
from worker.training_run import TrainingRun


class Batch(NamedTuple):
    indices: list[int]  # of the training examples in it
    tensors: dict[str, Any]  # what the objective's loss takes, on the CPU
    tokens: int  # real (non-pad) tokens, for trained_tokens
    # This process's share of the step's loss denominator (labelled tokens, pairs) when several processes
    # split the batch (worker/distributed.py): its loss and metrics weigh that much in the batch's.
    fraction: float = 1.0


class Objective(Protocol):
    # Sequences one example puts through the model (DPO: a preferred and a rejected one), for the
    # estimate of a step's activation memory.
    sequences_per_example: int
    # Steps between validations (reinforcement's eval_interval), the last step validating too; None: at
    # each epoch's end.
    validation_interval: int | None

    def prepare(self, model: Any, tokenizer: Any, run: TrainingRun) -> None:
        """Tokenise the run's files; called once the model is ready, before any step or resumed state."""

    @property
    def train_count(self) -> int: ...

    def batches(self, epoch: int, share: Share) -> Iterator[Batch]:
        """The epoch's batches, each cut to this process's part of it."""

    def loss(self, tensors: dict[str, Any], indices: list[int]) -> tuple[torch.Tensor, dict[str, float]]: ...

    def validate(self) -> dict[str, float]:
        """Metrics on the validation file; empty without one."""

    def metric_row(self, metrics: dict[str, float]) -> dict[str, Any]:
        """The step's row of step_metrics.csv."""
