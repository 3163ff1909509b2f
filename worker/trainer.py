"""Fine-tuning, supervised, DPO or reinforcement, LoRA, QLoRA or full, as one readable loop (in the manner of a
torchtune recipe).

    the model ready to train (worker/model_setup.py) → the objective tokenises the files → for each
    epoch: the objective's seeded batches → loss → backward, clip, step → per-step metrics → at the
    epoch's end (or every `validation_interval` steps and at the last, where the objective sets one):
    validation; at the epoch's end a checkpoint → the final checkpoint.

What a method changes is its objective (worker/objectives/): the batches, the loss and its metrics,
the validation. The loop is the same for all, so every method pauses, resumes and survives a lost
worker the same way. It knows nothing of HTTP or of where its input came from: it takes a
`TrainingRun` and talks to `TrainingHooks` (worker/runner.py's for a job, gxft/local.py's for
`gxft train`), which report metrics, deliver checkpoints and pass on the user's orders.
"""

import functools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from transformers import get_linear_schedule_with_warmup

from contract.internal_api import Order
from worker import distributed
from worker.data import steps_per_epoch, to_device
from worker.distributed import SINGLE, Share
from worker.model_setup import starting_model
from worker.objectives import objective_for
from worker.training_run import TrainingRun

T = TypeVar("T")
EMBEDDING_LAYERS = {"embed_tokens", "lm_head"}  # peft's names for them (EMBEDDING_LAYER_NAMES)


class TrainingHooks(Protocol):
    def step_done(self, step: int, total_steps: int, metrics: dict[str, float], trained_tokens: int) -> None: ...

    def order(self) -> Order: ...

    def save_checkpoint(
        self, step: int, metrics: dict[str, float], weights_dir: Path, state_path: Path | None, final: bool,
        paused: bool,
    ) -> Order: ...


@dataclass
class TrainingResult:
    status: Literal["completed", "pause", "stop"]  # "completed", or the order that stopped the loop
    trained_tokens: int = 0
    metric_rows: list[dict[str, Any]] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """One process's part of a run: all of it, or (`share`) one rank of several (worker/distributed.py)."""

    def __init__(self, run: TrainingRun, share: Share = SINGLE):
        if share.world > 1 and run.method == "reinforcement":
            raise ValueError("reinforcement fine-tuning runs in one process")
        self.run = run
        self.share = share
        self.settings = run.settings
        self.objective = objective_for(run)

    def setup(self) -> None:
        seed_everything(self.run.seed)
        self.tokenizer, self.model = starting_model(self.run, self.objective.sequences_per_example)
        self.model.train()
        self.objective.prepare(self.model, self.tokenizer, self.run)
        # Several processes: the model inside DDP (LoRA) or sharded by FSDP2 (all weights), before the
        # optimizer takes its (then sharded) parameters.
        self.wrapped = distributed.wrap(self.model, self.settings.lora) if self.share.world > 1 else None
        self.steps_per_epoch = steps_per_epoch(self.objective.train_count, self.settings.batch_size)
        self.total_steps = self.steps_per_epoch * self.settings.n_epochs
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.trainable, lr=self.settings.learning_rate, weight_decay=self.settings.weight_decay,
            fused=self.run.device.type == "cuda",
        )
        self.scheduler = get_linear_schedule_with_warmup(
            self.optimizer, math.ceil(self.settings.warmup_ratio * self.total_steps), self.total_steps
        )
        self.step = 0
        self.trained_tokens = 0
        self.metric_rows: list[dict[str, Any]] = []

    def _on_model(self, compute: Callable[[], T]) -> T:
        """`compute` on the model: inside the wrapper's forward where there is one (worker/distributed.py)."""
        return compute() if self.wrapped is None else self.wrapped(compute)

    # Resumable state: trainable weights, optimizer, schedule and position. Whole, never a rank's shard,
    # and keyed by parameter names, so that a run resumes on any number of processes.

    def _whole_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        options = StateDictOptions(full_state_dict=self.share.world > 1, cpu_offload=True)
        weights = get_model_state_dict(self.model, options=options)
        optimizer = get_optimizer_state_dict(self.model, self.optimizer, options=options)
        return weights, optimizer

    def save_state(self, path: Path) -> Path | None:
        """Every rank takes part; rank 0 writes (and answers the path)."""
        weights, optimizer = self._whole_state()
        if not self.share.leader:
            return None
        names = {name for name, p in self.model.named_parameters() if p.requires_grad}
        torch.save(
            {
                "step": self.step,
                "trained_tokens": self.trained_tokens,
                "metric_rows": self.metric_rows,
                "weights": {k: v for k, v in weights.items() if k in names},
                "optimizer": optimizer,
                "scheduler": self.scheduler.state_dict(),
            },
            path,
        )
        return path

    def load_state(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        options = StateDictOptions(full_state_dict=self.share.world > 1, strict=False)
        set_model_state_dict(self.model, state["weights"], options=options)
        set_optimizer_state_dict(self.model, self.optimizer, state["optimizer"], options=options)
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = state["step"]
        self.trained_tokens = state["trained_tokens"]
        self.metric_rows = state["metric_rows"]

    def save_weights(self, directory: Path) -> Path:
        """Every rank takes part (sharded weights are gathered); rank 0 writes."""
        if not self.settings.lora:
            whole = None
            if self.share.world > 1:
                whole = get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True,
                                                                                  cpu_offload=True))
                # Gathered copies no longer share storage, so save_pretrained cannot see which weights are
                # tied; named_parameters names each tied weight once, as the model's own files do.
                kept = {name for name, _ in self.model.named_parameters()} | dict(self.model.named_buffers()).keys()
                whole = {name: value for name, value in whole.items() if name in kept}
            if self.share.leader:
                directory.mkdir(parents=True, exist_ok=True)
                self.model.save_pretrained(directory, state_dict=whole)
                self.tokenizer.save_pretrained(directory)
            return directory
        if not self.share.leader:  # DDP: every rank holds the whole adapter
            return directory
        directory.mkdir(parents=True, exist_ok=True)
        for adapter in self.model.peft_config.values():
            # Name the base model by its registry id, not by this machine's folder, so that the adapter
            # loads elsewhere (peft, vLLM) with that id mapped to wherever the model lives there.
            adapter.base_model_name_or_path = self.run.model_name
        # peft's default ("auto") asks the hub whether the base model's vocabulary changed; GXFT never
        # resizes it, so the embeddings are saved only when the adapter targets them.
        targets = set(self.settings.lora_target_modules or ())
        self.model.save_pretrained(directory, save_embedding_layers="auto" if targets & EMBEDDING_LAYERS else False)
        return directory

    def _checkpoint(self, hooks: TrainingHooks, metrics: dict, final: bool, paused: bool = False) -> Order:
        weights = self.save_weights(self.run.workdir / f"step-{self.step}")
        state = None if final else self.save_state(self.run.workdir / f"state-{self.step}.pt")
        return hooks.save_checkpoint(self.step, metrics, weights, state, final, paused)

    def train(self, hooks: TrainingHooks) -> TrainingResult:
        settings, objective = self.settings, self.objective
        rows = self.metric_rows
        start_epoch, skip = divmod(self.step, self.steps_per_epoch)
        for epoch in range(start_epoch, settings.n_epochs):
            for index, batch in enumerate(objective.batches(epoch, self.share)):
                if epoch == start_epoch and index < skip:
                    continue
                tensors = to_device(batch.tensors, self.run.device)
                loss, step_metrics = self._on_model(functools.partial(objective.loss, tensors, batch.indices))
                tokens = batch.tokens
                if self.share.world == 1:
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), settings.max_grad_norm)
                else:
                    # DDP and FSDP2 average the ranks' gradients; each rank's loss weighs its share of
                    # the batch, so the average times the ranks is the one-process gradient.
                    (loss * batch.fraction * self.share.world).backward()
                    distributed.clip_grad_norm(self.trainable, settings.max_grad_norm)
                    step_metrics = distributed.summed(
                        {"tokens": tokens, **{k: v * batch.fraction for k, v in step_metrics.items()}},
                        self.run.device)
                    tokens = int(step_metrics.pop("tokens"))
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                self.trained_tokens += tokens
                metrics = {"step": self.step, "total_steps": self.total_steps, **step_metrics}
                end_of_epoch = index == self.steps_per_epoch - 1
                interval = objective.validation_interval
                if (self.step % interval == 0 or self.step == self.total_steps) if interval else end_of_epoch:
                    with torch.no_grad():  # every rank validates on the whole file, alike
                        metrics.update(self._on_model(objective.validate))
                rows.append(objective.metric_row(metrics))
                hooks.step_done(self.step, self.total_steps, metrics, self.trained_tokens)
                if end_of_epoch:
                    self._checkpoint(hooks, metrics, final=self.step == self.total_steps)
                order = hooks.order()
                if order == "pause" and self.step < self.total_steps:
                    # Resumed while the checkpoint was saved, the job goes on here, from this very step.
                    if self._checkpoint(hooks, metrics, final=False, paused=True) == "pause":
                        return TrainingResult("pause", self.trained_tokens, rows)
                elif order == "stop":
                    return TrainingResult("stop", self.trained_tokens, rows)
        return TrainingResult("completed", self.trained_tokens, rows)
